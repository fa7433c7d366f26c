import { describe, expect, it } from 'vitest'
import { decodePacket } from '../../../agent/decode/decode.ts'
import {
  DecodedPacket,
  LINKTYPE_ETHERNET,
  LINKTYPE_IPV4,
  LINKTYPE_IPV6,
  LINKTYPE_LINUX_SLL,
  LINKTYPE_LINUX_SLL2,
  LINKTYPE_LOOP,
  LINKTYPE_NULL,
  LINKTYPE_RAW,
  OUTCOME_IP,
  OUTCOME_MALFORMED,
  OUTCOME_NON_IP,
} from '../../../agent/decode/packet.ts'
import {
  arp,
  bytes,
  concat,
  ETHERTYPE_ARP,
  ETHERTYPE_IPV4,
  ETHERTYPE_IPV6,
  ETHERTYPE_QINQ,
  ETHERTYPE_QINQ_OLD,
  ETHERTYPE_VLAN,
  ethernet,
  filler,
  IPV6_AH,
  IPV6_DESTINATION,
  IPV6_ESP,
  IPV6_FRAGMENT,
  IPV6_HOP_BY_HOP,
  IPV6_MOBILITY,
  IPV6_NO_NEXT,
  IPV6_ROUTING,
  icmp,
  ipv4,
  ipv4Options,
  ipv6,
  loopLink,
  nullLink,
  sll,
  sll2,
  synOptions,
  TCP_ACK,
  TCP_PSH,
  TCP_SYN,
  tcp,
  udp,
  type VlanTag,
} from './frames.ts'
import { type Decoded, run } from './harness.ts'

const AF_INET = 2

// ---------------------------------------------------------------------------------------------
// Well-formed packets (without link), with the fields they must decode to.

interface Inner {
  name: string
  version: 4 | 6
  packet: Uint8Array
  expect: Partial<Decoded>
}

const inners: Inner[] = [
  {
    name: 'IPv4 TCP SYN with options',
    version: 4,
    packet: ipv4(tcp({ srcPort: 50123, dstPort: 443, flags: TCP_SYN, options: synOptions() }), {
      protocol: 6,
      dontFragment: true,
    }),
    expect: {
      ipVersion: 4,
      src: '192.0.2.1',
      dst: '198.51.100.2',
      protocol: 6,
      srcPort: 50123,
      dstPort: 443,
      tcpFlags: TCP_SYN,
      icmpType: -1,
      fragment: false,
      ipLength: 60,
      transportOffset: 20,
      payloadOffset: 60,
      payloadLength: 0,
    },
  },
  {
    name: 'IPv4 with options, UDP',
    version: 4,
    packet: ipv4(udp({ srcPort: 5353, dstPort: 53, payload: filler(30) }), {
      protocol: 17,
      options: ipv4Options(),
      src: '10.1.2.3',
      dst: '255.255.255.255',
    }),
    expect: {
      src: '10.1.2.3',
      dst: '255.255.255.255',
      protocol: 17,
      srcPort: 5353,
      dstPort: 53,
      tcpFlags: -1,
      ipLength: 36 + 38,
      transportOffset: 36,
      payloadOffset: 44,
      payloadLength: 30,
    },
  },
  {
    name: 'IPv4 ICMP echo request',
    version: 4,
    packet: ipv4(icmp(8), { protocol: 1 }),
    expect: { protocol: 1, icmpType: 8, srcPort: -1, dstPort: -1, payloadOffset: -1 },
  },
  {
    name: 'IPv4 GRE (another protocol)',
    version: 4,
    packet: ipv4(filler(24), { protocol: 47 }),
    expect: { protocol: 47, srcPort: -1, dstPort: -1, tcpFlags: -1, icmpType: -1 },
  },
  {
    name: 'IPv6 TCP with payload',
    version: 6,
    packet: ipv6(
      tcp({ srcPort: 22, dstPort: 61000, flags: TCP_ACK | TCP_PSH, payload: filler(100) }),
      { protocol: 6, src: 'fe80::1:2', dst: 'ff02::1' },
    ),
    expect: {
      ipVersion: 6,
      src: 'fe80::1:2',
      dst: 'ff02::1',
      protocol: 6,
      srcPort: 22,
      dstPort: 61000,
      tcpFlags: TCP_ACK | TCP_PSH,
      ipLength: 40 + 120,
      transportOffset: 40,
      payloadOffset: 60,
      payloadLength: 100,
    },
  },
  {
    name: 'IPv6 hop-by-hop, routing, destination options, UDP',
    version: 6,
    packet: ipv6(udp({ srcPort: 546, dstPort: 547 }), {
      protocol: 17,
      extensions: [
        { type: IPV6_HOP_BY_HOP },
        { type: IPV6_ROUTING, length: 24 },
        { type: IPV6_DESTINATION, length: 16 },
      ],
    }),
    expect: {
      src: '2001:db8::1',
      dst: '2001:db8:1::2',
      protocol: 17,
      srcPort: 546,
      dstPort: 547,
      transportOffset: 40 + 8 + 24 + 16,
      payloadLength: 12,
    },
  },
  {
    name: 'IPv6 ICMPv6 neighbor solicitation',
    version: 6,
    packet: ipv6(icmp(135, 0, filler(16)), { protocol: 58 }),
    expect: { protocol: 58, icmpType: 135, srcPort: -1 },
  },
  {
    name: 'IPv6 AH then TCP',
    version: 6,
    packet: ipv6(tcp({ srcPort: 500, dstPort: 4500 }), {
      protocol: 6,
      extensions: [{ type: IPV6_AH, length: 24 }],
    }),
    expect: { protocol: 6, srcPort: 500, dstPort: 4500, transportOffset: 64 },
  },
  {
    name: 'IPv6 first fragment of a UDP datagram',
    version: 6,
    packet: ipv6(udp({ srcPort: 4433, dstPort: 443, length: 3000, payload: filler(1224) }), {
      protocol: 17,
      extensions: [{ type: IPV6_FRAGMENT, fragmentOffset: 0, more: true }],
    }),
    expect: {
      protocol: 17,
      srcPort: 4433,
      dstPort: 443,
      fragment: true,
      firstFragment: true,
      payloadLength: 1224,
    },
  },
]

interface Link {
  name: string
  linkType: number
  wrap: (version: 4 | 6, packet: Uint8Array) => Uint8Array
  /** Bytes before the IP header. */
  header: number
  vlan: number
}

const etherType = (version: 4 | 6): number => (version === 4 ? ETHERTYPE_IPV4 : ETHERTYPE_IPV6)
const vlan100: VlanTag[] = [{ tpid: ETHERTYPE_VLAN, vid: 100, pcp: 5 }]
const qinq: VlanTag[] = [
  { tpid: ETHERTYPE_QINQ, vid: 4001 },
  { tpid: ETHERTYPE_VLAN, vid: 12 },
]

const links: Link[] = [
  {
    name: 'Ethernet',
    linkType: LINKTYPE_ETHERNET,
    wrap: (v, p) => ethernet(etherType(v), p),
    header: 14,
    vlan: -1,
  },
  {
    name: 'Ethernet 802.1Q',
    linkType: LINKTYPE_ETHERNET,
    wrap: (v, p) => ethernet(etherType(v), p, vlan100),
    header: 18,
    vlan: 100,
  },
  {
    name: 'Ethernet QinQ 0x88a8',
    linkType: LINKTYPE_ETHERNET,
    wrap: (v, p) => ethernet(etherType(v), p, qinq),
    header: 22,
    vlan: 4001,
  },
  {
    name: 'Ethernet QinQ 0x9100',
    linkType: LINKTYPE_ETHERNET,
    wrap: (v, p) =>
      ethernet(etherType(v), p, [
        { tpid: ETHERTYPE_QINQ_OLD, vid: 7 },
        { tpid: ETHERTYPE_VLAN, vid: 4095 },
      ]),
    header: 22,
    vlan: 7,
  },
  {
    name: 'Linux SLL',
    linkType: LINKTYPE_LINUX_SLL,
    wrap: (v, p) => sll(etherType(v), p),
    header: 16,
    vlan: -1,
  },
  {
    name: 'Linux SLL with 802.1Q',
    linkType: LINKTYPE_LINUX_SLL,
    wrap: (v, p) => sll(etherType(v), p, vlan100),
    header: 20,
    vlan: 100,
  },
  {
    name: 'Linux SLL2',
    linkType: LINKTYPE_LINUX_SLL2,
    wrap: (v, p) => sll2(etherType(v), p),
    header: 20,
    vlan: -1,
  },
  {
    name: 'Linux SLL2 with QinQ',
    linkType: LINKTYPE_LINUX_SLL2,
    wrap: (v, p) => sll2(etherType(v), p, qinq),
    header: 28,
    vlan: 4001,
  },
  {
    name: 'NULL little-endian (Linux AF_INET6 10)',
    linkType: LINKTYPE_NULL,
    wrap: (v, p) => nullLink(v === 4 ? AF_INET : 10, p, true),
    header: 4,
    vlan: -1,
  },
  {
    name: 'NULL big-endian (BSD AF_INET6 24)',
    linkType: LINKTYPE_NULL,
    wrap: (v, p) => nullLink(v === 4 ? AF_INET : 24, p, false),
    header: 4,
    vlan: -1,
  },
  {
    name: 'NULL little-endian (FreeBSD AF_INET6 28)',
    linkType: LINKTYPE_NULL,
    wrap: (v, p) => nullLink(v === 4 ? AF_INET : 28, p, true),
    header: 4,
    vlan: -1,
  },
  {
    name: 'NULL little-endian (Darwin AF_INET6 30)',
    linkType: LINKTYPE_NULL,
    wrap: (v, p) => nullLink(v === 4 ? AF_INET : 30, p, true),
    header: 4,
    vlan: -1,
  },
  {
    name: 'LOOP',
    linkType: LINKTYPE_LOOP,
    wrap: (v, p) => loopLink(v === 4 ? AF_INET : 24, p),
    header: 4,
    vlan: -1,
  },
  { name: 'raw IP', linkType: LINKTYPE_RAW, wrap: (_v, p) => p, header: 0, vlan: -1 },
]

describe('well-formed frames', () => {
  for (const link of links) {
    for (const inner of inners) {
      it(`${link.name}: ${inner.name}`, () => {
        const d = run(link.linkType, link.wrap(inner.version, inner.packet))
        const expected: Partial<Decoded> = {
          outcome: OUTCOME_IP,
          malformed: '',
          ipVersion: inner.version,
          vlan: link.vlan,
          fragment: false,
          firstFragment: true,
          ipOffset: link.header,
          ipLength: inner.packet.length,
          ...inner.expect,
        }
        for (const key of ['transportOffset', 'payloadOffset'] as const) {
          const value = inner.expect[key]
          if (value !== undefined && value >= 0) expected[key] = value + link.header
        }
        expect(d).toMatchObject(expected)
      })
    }
  }

  it('LINKTYPE_IPV4 and LINKTYPE_IPV6', () => {
    for (const inner of inners) {
      const linkType = inner.version === 4 ? LINKTYPE_IPV4 : LINKTYPE_IPV6
      expect(run(linkType, inner.packet)).toMatchObject({ outcome: OUTCOME_IP, ...inner.expect })
    }
  })

  it('decodes every field of one frame exactly', () => {
    const frame = ethernet(
      ETHERTYPE_IPV4,
      ipv4(tcp({ srcPort: 1, dstPort: 65535, flags: 0xff }), { protocol: 6 }),
      vlan100,
    )
    expect(run(LINKTYPE_ETHERNET, frame)).toEqual({
      outcome: OUTCOME_IP,
      malformed: '',
      nonIp: '',
      ipVersion: 4,
      src: '192.0.2.1',
      dst: '198.51.100.2',
      protocol: 6,
      srcPort: 1,
      dstPort: 65535,
      tcpFlags: 0xff,
      icmpType: -1,
      fragment: false,
      firstFragment: true,
      vlan: 100,
      ipOffset: 18,
      ipLength: 40,
      transportOffset: 38,
      payloadOffset: 58,
      payloadLength: 0,
    } satisfies Decoded)
  })

  it('offsets are absolute in the buffer', () => {
    const frame = ethernet(ETHERTYPE_IPV6, inners[4]?.packet ?? new Uint8Array(0))
    const buffer = concat(filler(1000), frame)
    const out = new DecodedPacket()
    decodePacket(LINKTYPE_ETHERNET, buffer, 1000, frame.length, frame.length, out)
    expect(out.buffer).toBe(buffer)
    expect(out.ipOffset).toBe(1014)
    expect(out.srcOffset).toBe(1022)
    expect(out.dstOffset).toBe(1038)
    expect(out.transportOffset).toBe(1054)
  })

  it('ignores Ethernet padding and FCS after a short IP packet', () => {
    const packet = ipv4(udp({ payload: bytes(1, 2) }), { protocol: 17 })
    const frame = concat(ethernet(ETHERTYPE_IPV4, packet), new Uint8Array(46 - packet.length + 4))
    expect(run(LINKTYPE_ETHERNET, frame)).toMatchObject({
      outcome: OUTCOME_IP,
      ipLength: 30,
      payloadLength: 2,
    })
    const v6 = ipv6(new Uint8Array(0), { protocol: IPV6_NO_NEXT })
    const frame6 = concat(ethernet(ETHERTYPE_IPV6, v6), new Uint8Array(10))
    expect(run(LINKTYPE_ETHERNET, frame6)).toMatchObject({
      outcome: OUTCOME_IP,
      protocol: IPV6_NO_NEXT,
      ipLength: 40,
    })
  })

  it('ends the IPv6 chain at ESP and no-next-header, without ports', () => {
    const esp = ipv6(filler(40), { protocol: IPV6_ESP, extensions: [{ type: IPV6_HOP_BY_HOP }] })
    expect(run(LINKTYPE_RAW, esp)).toMatchObject({
      outcome: OUTCOME_IP,
      protocol: IPV6_ESP,
      srcPort: -1,
      dstPort: -1,
      transportOffset: 48,
    })
    const none = ipv6(new Uint8Array(0), {
      protocol: IPV6_NO_NEXT,
      extensions: [{ type: IPV6_DESTINATION }, { type: IPV6_MOBILITY, length: 16 }],
    })
    expect(run(LINKTYPE_RAW, none)).toMatchObject({
      outcome: OUTCOME_IP,
      protocol: IPV6_NO_NEXT,
      srcPort: -1,
    })
  })

  it('accepts exactly 8 IPv6 extension headers', () => {
    const extensions = Array.from({ length: 8 }, () => ({ type: IPV6_DESTINATION }))
    expect(run(LINKTYPE_RAW, ipv6(udp(), { protocol: 17, extensions }))).toMatchObject({
      outcome: OUTCOME_IP,
      srcPort: 53000,
      dstPort: 53,
    })
  })

  it('reads an IPv6 jumbogram (payload length 0, hop-by-hop Jumbo Payload option)', () => {
    const segment = tcp({ srcPort: 1234, dstPort: 80, payload: filler(200) })
    const hbh = bytes(6, 0, 0xc2, 4, 0, 0, 0, 8 + segment.length)
    const packet = ipv6(concat(hbh, segment), { protocol: IPV6_HOP_BY_HOP, payloadLength: 0 })
    expect(run(LINKTYPE_RAW, packet)).toMatchObject({
      outcome: OUTCOME_IP,
      protocol: 6,
      srcPort: 1234,
      dstPort: 80,
      ipLength: packet.length,
      payloadLength: 200,
    })
  })
})

describe('non-IP frames', () => {
  it.each([
    ['Ethernet ARP', LINKTYPE_ETHERNET, ethernet(ETHERTYPE_ARP, arp()), 'arp', -1],
    ['802.1Q ARP', LINKTYPE_ETHERNET, ethernet(ETHERTYPE_ARP, arp(), vlan100), 'arp', 100],
    ['QinQ ARP', LINKTYPE_ETHERNET, ethernet(ETHERTYPE_ARP, arp(), qinq), 'arp', 4001],
    ['SLL ARP', LINKTYPE_LINUX_SLL, sll(ETHERTYPE_ARP, arp()), 'arp', -1],
    ['SLL2 ARP', LINKTYPE_LINUX_SLL2, sll2(ETHERTYPE_ARP, arp()), 'arp', -1],
    ['ARP header only', LINKTYPE_ETHERNET, ethernet(ETHERTYPE_ARP, new Uint8Array(0)), 'arp', -1],
    ['LLDP', LINKTYPE_ETHERNET, ethernet(0x88cc, filler(40)), 'other', -1],
    ['802.3 length field (LLC)', LINKTYPE_ETHERNET, ethernet(0x0026, filler(38)), 'other', -1],
    ['802.1Q MPLS', LINKTYPE_ETHERNET, ethernet(0x8847, filler(40), vlan100), 'other', 100],
    ['SLL 802.2 LLC', LINKTYPE_LINUX_SLL, sll(0x0004, filler(40)), 'other', -1],
    ['SLL2 CAN', LINKTYPE_LINUX_SLL2, sll2(0x000c, filler(16)), 'other', -1],
    ['NULL unknown family', LINKTYPE_NULL, nullLink(7, filler(40)), 'other', -1],
    ['NULL family 0', LINKTYPE_NULL, nullLink(0, filler(40)), 'other', -1],
    ['NULL garbage family', LINKTYPE_NULL, nullLink(0x01020304, filler(40)), 'other', -1],
    ['LOOP host-order family', LINKTYPE_LOOP, nullLink(AF_INET, filler(40), true), 'other', -1],
  ])('%s', (_name, linkType, frame, nonIp, vlan) => {
    expect(run(linkType, frame)).toMatchObject({
      outcome: OUTCOME_NON_IP,
      nonIp,
      vlan,
      ipVersion: 0,
      ipOffset: -1,
      srcPort: -1,
      dstPort: -1,
    })
  })
})

// ---------------------------------------------------------------------------------------------
// Malformed, every reason.

const v4tcp = ipv4(tcp({ options: synOptions() }), { protocol: 6 })
const v4udp = ipv4(udp(), { protocol: 17 })
const v6tcp = ipv6(tcp({ options: synOptions() }), { protocol: 6 })
const eth4 = (packet: Uint8Array): Uint8Array => ethernet(ETHERTYPE_IPV4, packet)
const eth6 = (packet: Uint8Array): Uint8Array => ethernet(ETHERTYPE_IPV6, packet)

interface Bad {
  name: string
  linkType: number
  frame: Uint8Array
  snaplen?: number
  originalLength?: number
}

const E = LINKTYPE_ETHERNET
const RAW = LINKTYPE_RAW

const malformed: Record<string, Bad[]> = {
  'truncated-link': [
    { name: 'empty Ethernet frame', linkType: E, frame: new Uint8Array(0) },
    { name: 'Ethernet 13 bytes', linkType: E, frame: filler(13) },
    { name: 'Ethernet cut by snaplen', linkType: E, frame: eth4(v4tcp), snaplen: 13 },
    {
      name: 'VLAN tag cut short',
      linkType: E,
      frame: ethernet(ETHERTYPE_IPV4, new Uint8Array(0), vlan100).subarray(0, 17),
    },
    {
      name: 'inner QinQ tag cut short',
      linkType: E,
      frame: ethernet(ETHERTYPE_IPV4, v4tcp, qinq),
      snaplen: 20,
    },
    {
      name: 'SLL 15 bytes',
      linkType: LINKTYPE_LINUX_SLL,
      frame: sll(ETHERTYPE_IPV4, v4tcp),
      snaplen: 15,
    },
    {
      name: 'SLL with VLAN cut',
      linkType: LINKTYPE_LINUX_SLL,
      frame: sll(ETHERTYPE_IPV4, v4tcp, vlan100),
      snaplen: 18,
    },
    {
      name: 'SLL2 19 bytes',
      linkType: LINKTYPE_LINUX_SLL2,
      frame: sll2(ETHERTYPE_IPV4, v4tcp),
      snaplen: 19,
    },
    { name: 'NULL 3 bytes', linkType: LINKTYPE_NULL, frame: bytes(2, 0, 0) },
    { name: 'LOOP 3 bytes', linkType: LINKTYPE_LOOP, frame: bytes(0, 0, 0) },
    { name: 'raw IP empty', linkType: RAW, frame: new Uint8Array(0) },
  ],
  'unsupported-link-type': [
    { name: '802.11 (105)', linkType: 105, frame: filler(60) },
    { name: 'PPP (9)', linkType: 9, frame: filler(60) },
    { name: 'negative link type', linkType: -1, frame: filler(60) },
    { name: 'empty frame of unknown link type', linkType: 65535, frame: new Uint8Array(0) },
  ],
  'vlan-too-deep': [
    {
      name: 'three 802.1Q tags',
      linkType: E,
      frame: ethernet(ETHERTYPE_IPV4, v4tcp, [...qinq, { tpid: ETHERTYPE_VLAN, vid: 3 }]),
    },
    {
      name: 'three tags on SLL',
      linkType: LINKTYPE_LINUX_SLL,
      frame: sll(ETHERTYPE_IPV4, v4tcp, [...vlan100, ...vlan100, ...vlan100]),
    },
    {
      name: 'a third tag even when cut right after it',
      linkType: E,
      frame: ethernet(ETHERTYPE_IPV4, v4tcp, [...vlan100, ...vlan100, ...vlan100]),
      snaplen: 22,
    },
  ],
  'bad-ip-version': [
    { name: 'EtherType IPv4, version 6', linkType: E, frame: ethernet(ETHERTYPE_IPV4, v6tcp) },
    {
      name: 'EtherType IPv6, version 4',
      linkType: E,
      frame: ethernet(ETHERTYPE_IPV6, concat(v4tcp, filler(20))),
    },
    { name: 'raw IP version 5', linkType: RAW, frame: ipv4(udp(), { protocol: 17, version: 5 }) },
    { name: 'raw IP version 0', linkType: RAW, frame: new Uint8Array(60) },
    { name: 'LINKTYPE_IPV4 with IPv6', linkType: LINKTYPE_IPV4, frame: v6tcp },
    { name: 'LINKTYPE_IPV6 with IPv4', linkType: LINKTYPE_IPV6, frame: concat(v4tcp, filler(20)) },
    { name: 'NULL AF_INET with IPv6', linkType: LINKTYPE_NULL, frame: nullLink(AF_INET, v6tcp) },
    {
      name: 'LOOP AF_INET6 with IPv4',
      linkType: LINKTYPE_LOOP,
      frame: loopLink(24, concat(v4tcp, filler(20))),
    },
  ],
  'truncated-ipv4': [
    { name: '19 bytes of IPv4', linkType: E, frame: eth4(v4tcp), snaplen: 14 + 19 },
    { name: 'IPv4 empty after Ethernet', linkType: E, frame: eth4(new Uint8Array(0)) },
    {
      name: 'IPv4 options not captured',
      linkType: E,
      frame: eth4(ipv4(tcp(), { protocol: 6, options: filler(40) })),
      snaplen: 14 + 40,
    },
    { name: 'LINKTYPE_IPV4 10 bytes', linkType: LINKTYPE_IPV4, frame: v4tcp.subarray(0, 10) },
  ],
  'bad-ipv4-header-length': [
    { name: 'IHL 4', linkType: E, frame: eth4(ipv4(udp(), { protocol: 17, ihl: 4 })) },
    { name: 'IHL 0', linkType: RAW, frame: ipv4(udp(), { protocol: 17, ihl: 0 }) },
  ],
  'bad-ipv4-total-length': [
    {
      name: 'total length 19',
      linkType: E,
      frame: eth4(ipv4(udp(), { protocol: 17, totalLength: 19 })),
    },
    { name: 'total length 0', linkType: RAW, frame: ipv4(udp(), { protocol: 17, totalLength: 0 }) },
    {
      name: 'total length below IHL*4 (options)',
      linkType: E,
      frame: eth4(ipv4(udp(), { protocol: 17, options: filler(8), totalLength: 24 })),
    },
    {
      name: 'total length one past the frame',
      linkType: E,
      frame: eth4(ipv4(udp(), { protocol: 17, totalLength: 20 + 20 + 1 })),
    },
    {
      name: 'total length past the original length of a snaplen-cut frame',
      linkType: E,
      frame: eth4(ipv4(udp({ payload: filler(200) }), { protocol: 17, totalLength: 1500 })),
      snaplen: 128,
    },
    {
      name: 'total length 65535 in a small frame',
      linkType: RAW,
      frame: ipv4(tcp(), { protocol: 6, totalLength: 65535 }),
    },
  ],
  'truncated-ipv6': [
    { name: '39 bytes of IPv6', linkType: E, frame: eth6(v6tcp), snaplen: 14 + 39 },
    {
      name: 'IPv6 empty after SLL',
      linkType: LINKTYPE_LINUX_SLL,
      frame: sll(ETHERTYPE_IPV6, new Uint8Array(0)),
    },
    { name: 'LINKTYPE_IPV6 1 byte', linkType: LINKTYPE_IPV6, frame: bytes(0x60) },
  ],
  'bad-ipv6-payload-length': [
    {
      name: 'payload length one past the frame',
      linkType: E,
      frame: eth6(ipv6(udp(), { protocol: 17, payloadLength: 21 })),
    },
    {
      name: 'payload length 65535',
      linkType: RAW,
      frame: ipv6(udp(), { protocol: 17, payloadLength: 65535 }),
    },
    {
      name: 'payload length past the original length of a snaplen-cut frame',
      linkType: E,
      frame: eth6(ipv6(udp({ payload: filler(300) }), { protocol: 17, payloadLength: 400 })),
      snaplen: 128,
    },
  ],
  'ipv6-extension-chain': [
    {
      name: '9 destination options headers (a loop, by count)',
      linkType: E,
      frame: eth6(
        ipv6(udp(), {
          protocol: 17,
          extensions: Array.from({ length: 9 }, () => ({ type: IPV6_DESTINATION })),
        }),
      ),
    },
    {
      name: '20 hop-by-hop headers',
      linkType: RAW,
      frame: ipv6(udp(), {
        protocol: 17,
        extensions: Array.from({ length: 20 }, () => ({ type: IPV6_HOP_BY_HOP })),
      }),
    },
    {
      name: 'hop-by-hop pointing to itself until the payload runs out',
      linkType: RAW,
      frame: ipv6(new Uint8Array(0), {
        protocol: IPV6_HOP_BY_HOP,
        extensions: [{ type: IPV6_HOP_BY_HOP }, { type: IPV6_HOP_BY_HOP }],
      }),
    },
    {
      name: 'header length past the payload',
      linkType: E,
      frame: eth6(
        ipv6(udp(), { protocol: 17, extensions: [{ type: IPV6_DESTINATION, lengthByte: 10 }] }),
      ),
    },
    {
      name: 'routing header length past the payload length (frame longer)',
      linkType: RAW,
      frame: concat(
        ipv6(new Uint8Array(0), {
          protocol: 17,
          extensions: [{ type: IPV6_ROUTING, lengthByte: 3 }],
        }),
        filler(64),
      ),
    },
    {
      name: 'AH length past the payload',
      linkType: RAW,
      frame: ipv6(tcp(), { protocol: 6, extensions: [{ type: IPV6_AH, lengthByte: 200 }] }),
    },
    {
      name: 'fragment header cut by the payload length',
      linkType: RAW,
      frame: concat(
        ipv6(new Uint8Array(0), { protocol: IPV6_FRAGMENT, payloadLength: 4 }),
        bytes(17, 0, 0, 0),
      ),
    },
    {
      name: 'chain runs off the captured bytes',
      linkType: E,
      frame: eth6(
        ipv6(tcp(), { protocol: 6, extensions: [{ type: IPV6_HOP_BY_HOP, length: 256 }] }),
      ),
      snaplen: 128,
    },
    {
      name: 'next header byte not captured',
      linkType: E,
      frame: eth6(ipv6(tcp(), { protocol: 6, extensions: [{ type: IPV6_HOP_BY_HOP }] })),
      snaplen: 14 + 41,
    },
    {
      name: 'extension header with empty payload',
      linkType: RAW,
      frame: ipv6(new Uint8Array(0), { protocol: IPV6_ROUTING }),
    },
  ],
  'truncated-tcp': [
    { name: '13 bytes of TCP captured', linkType: E, frame: eth4(v4tcp), snaplen: 14 + 20 + 13 },
    {
      name: 'IPv6 TCP with no bytes',
      linkType: RAW,
      frame: ipv6(new Uint8Array(0), { protocol: 6 }),
    },
    {
      name: 'IPv4 TCP 10 bytes on the wire',
      linkType: RAW,
      frame: ipv4(filler(10), { protocol: 6 }),
    },
  ],
  'bad-tcp-data-offset': [
    {
      name: 'data offset 4',
      linkType: E,
      frame: eth4(ipv4(tcp({ dataOffset: 4 }), { protocol: 6 })),
    },
    {
      name: 'data offset 0',
      linkType: E,
      frame: eth6(ipv6(tcp({ dataOffset: 0 }), { protocol: 6 })),
    },
    {
      name: 'data offset beyond the IP payload',
      linkType: E,
      frame: eth4(ipv4(tcp({ dataOffset: 15 }), { protocol: 6 })),
    },
    {
      name: 'data offset 6 with a 20-byte segment',
      linkType: RAW,
      frame: ipv6(tcp({ dataOffset: 6 }), { protocol: 6 }),
    },
    {
      name: 'TCP in Ethernet padding (IPv4 total length 20)',
      linkType: E,
      frame: eth4(concat(ipv4(new Uint8Array(0), { protocol: 6 }), tcp())),
    },
  ],
  'truncated-udp': [
    { name: '7 bytes of UDP captured', linkType: E, frame: eth4(v4udp), snaplen: 14 + 20 + 7 },
    {
      name: 'IPv6 UDP with 4 bytes',
      linkType: RAW,
      frame: ipv6(bytes(0, 53, 0, 53), { protocol: 17 }),
    },
  ],
  'bad-udp-length': [
    { name: 'UDP length 7', linkType: E, frame: eth4(ipv4(udp({ length: 7 }), { protocol: 17 })) },
    { name: 'UDP length 0', linkType: RAW, frame: ipv6(udp({ length: 0 }), { protocol: 17 }) },
    {
      name: 'UDP length past the IP payload',
      linkType: E,
      frame: eth6(ipv6(udp({ length: 21, payload: filler(12) }), { protocol: 17 })),
    },
    {
      name: 'UDP in Ethernet padding (IPv4 total length 20)',
      linkType: E,
      frame: eth4(concat(ipv4(new Uint8Array(0), { protocol: 17 }), udp())),
    },
    {
      name: 'first fragment too short for a UDP header',
      linkType: E,
      frame: eth4(concat(ipv4(bytes(1, 2, 3, 4), { protocol: 17, moreFragments: true }), udp())),
    },
  ],
  'truncated-icmp': [
    { name: 'ICMP with no bytes', linkType: RAW, frame: ipv4(new Uint8Array(0), { protocol: 1 }) },
    {
      name: 'ICMPv6 with no bytes',
      linkType: RAW,
      frame: ipv6(new Uint8Array(0), { protocol: 58 }),
    },
    {
      name: 'ICMP type not captured',
      linkType: E,
      frame: eth4(ipv4(icmp(0), { protocol: 1 })),
      snaplen: 34,
    },
    {
      name: 'ICMP in Ethernet padding',
      linkType: E,
      frame: eth4(concat(ipv4(new Uint8Array(0), { protocol: 1 }), icmp(8))),
    },
  ],
}

describe('malformed frames', () => {
  it('covers every reason', async () => {
    const { MALFORMED_REASONS } = await import('../../../agent/decode/packet.ts')
    expect(Object.keys(malformed).sort()).toEqual([...MALFORMED_REASONS].sort())
  })

  for (const [reason, cases] of Object.entries(malformed)) {
    describe(reason, () => {
      it.each(cases.map((c) => [c.name, c] as const))('%s', (_name, c) => {
        const d = run(c.linkType, c.frame, { snaplen: c.snaplen, originalLength: c.originalLength })
        expect({ outcome: d.outcome, malformed: d.malformed }).toEqual({
          outcome: OUTCOME_MALFORMED,
          malformed: reason,
        })
        expect(d.srcPort).toBe(-1)
        expect(d.dstPort).toBe(-1)
      })
    })
  }

  it('refuses nonsensical positions without throwing', () => {
    const out = new DecodedPacket()
    const frame = eth4(v4tcp)
    for (const [offset, captured] of [
      [-1, 10],
      [Number.NaN, 10],
      [0.5, 10],
      [0, -5],
      [0, Number.NaN],
      [frame.length + 10, 10],
    ] as const) {
      decodePacket(LINKTYPE_ETHERNET, frame, offset, captured, 100, out)
      expect(out.outcome).toBe(OUTCOME_MALFORMED)
      expect(out.malformed).toBe('truncated-link')
    }
  })

  it('reads only inside the buffer when the captured length overstates it', () => {
    const frame = eth4(v4tcp)
    const out = new DecodedPacket()
    decodePacket(LINKTYPE_ETHERNET, frame, 0, frame.length + 1000, frame.length + 1000, out)
    expect(out.outcome).toBe(OUTCOME_IP)
    decodePacket(LINKTYPE_ETHERNET, frame.subarray(0, 40), 0, 1000, 1000, out)
    expect(out).toMatchObject({ outcome: OUTCOME_MALFORMED, malformed: 'truncated-tcp' })
  })

  it('treats an original length below the captured length as the captured length', () => {
    const frame = eth4(v4tcp)
    expect(run(LINKTYPE_ETHERNET, frame, { originalLength: 10 })).toMatchObject({
      outcome: OUTCOME_IP,
      srcPort: 43210,
    })
  })
})

describe('fragments', () => {
  it('IPv4 first fragment carries ports, even when UDP length exceeds the fragment', () => {
    const frame = eth4(
      ipv4(udp({ srcPort: 1000, dstPort: 2000, length: 4000, payload: filler(1472) }), {
        protocol: 17,
        moreFragments: true,
      }),
    )
    expect(run(LINKTYPE_ETHERNET, frame)).toMatchObject({
      outcome: OUTCOME_IP,
      protocol: 17,
      srcPort: 1000,
      dstPort: 2000,
      fragment: true,
      firstFragment: true,
      payloadLength: 1472,
    })
  })

  it('IPv4 first TCP fragment carries ports and flags', () => {
    const frame = eth4(ipv4(tcp({ payload: filler(64) }), { protocol: 6, moreFragments: true }))
    expect(run(LINKTYPE_ETHERNET, frame)).toMatchObject({
      outcome: OUTCOME_IP,
      srcPort: 43210,
      dstPort: 443,
      tcpFlags: TCP_ACK,
      fragment: true,
      firstFragment: true,
    })
  })

  it('IPv4 middle and last fragments: protocol, no ports, whatever the bytes', () => {
    for (const moreFragments of [true, false]) {
      const frame = eth4(
        ipv4(new Uint8Array(0xff).fill(0xff), { protocol: 17, moreFragments, fragmentOffset: 185 }),
      )
      expect(run(LINKTYPE_ETHERNET, frame)).toMatchObject({
        outcome: OUTCOME_IP,
        ipVersion: 4,
        protocol: 17,
        srcPort: -1,
        dstPort: -1,
        tcpFlags: -1,
        fragment: true,
        firstFragment: false,
        transportOffset: -1,
        payloadOffset: -1,
      })
    }
    // A later fragment too short for any transport header is still fine.
    const tiny = ipv4(bytes(1), { protocol: 6, fragmentOffset: 1 })
    expect(run(LINKTYPE_RAW, tiny)).toMatchObject({ outcome: OUTCOME_IP, protocol: 6, srcPort: -1 })
  })

  it('IPv4 with DF only is not a fragment', () => {
    expect(run(LINKTYPE_RAW, ipv4(udp(), { protocol: 17, dontFragment: true }))).toMatchObject({
      outcome: OUTCOME_IP,
      fragment: false,
      firstFragment: true,
    })
  })

  it('IPv6 first fragment after other extension headers', () => {
    const packet = ipv6(tcp({ srcPort: 8080, dstPort: 9090, payload: filler(100) }), {
      protocol: 6,
      extensions: [
        { type: IPV6_HOP_BY_HOP },
        { type: IPV6_FRAGMENT, more: true },
        { type: IPV6_DESTINATION },
      ],
    })
    expect(run(LINKTYPE_RAW, packet)).toMatchObject({
      outcome: OUTCOME_IP,
      protocol: 6,
      srcPort: 8080,
      dstPort: 9090,
      fragment: true,
      firstFragment: true,
      transportOffset: 40 + 24,
    })
  })

  it('IPv6 non-first fragment: protocol from the fragment header, no ports', () => {
    const packet = ipv6(filler(64), {
      protocol: 17,
      extensions: [{ type: IPV6_FRAGMENT, fragmentOffset: 181, more: true }],
    })
    expect(run(LINKTYPE_ETHERNET, eth6(packet))).toMatchObject({
      outcome: OUTCOME_IP,
      ipVersion: 6,
      protocol: 17,
      srcPort: -1,
      dstPort: -1,
      fragment: true,
      firstFragment: false,
      transportOffset: -1,
    })
    const destInFragmentable = ipv6(filler(16), {
      protocol: IPV6_DESTINATION,
      extensions: [{ type: IPV6_FRAGMENT, fragmentOffset: 2 }],
    })
    expect(run(LINKTYPE_RAW, destInFragmentable)).toMatchObject({
      outcome: OUTCOME_IP,
      protocol: IPV6_DESTINATION,
      firstFragment: false,
    })
  })

  it('IPv6 atomic fragment (offset 0, M 0)', () => {
    const packet = ipv6(udp(), { protocol: 17, extensions: [{ type: IPV6_FRAGMENT }] })
    expect(run(LINKTYPE_RAW, packet)).toMatchObject({
      outcome: OUTCOME_IP,
      srcPort: 53000,
      fragment: true,
      firstFragment: true,
    })
  })
})

describe('snaplen truncation is not malformation', () => {
  it('IPv6 with extension headers and TCP options cut at 128 decodes with ports', () => {
    const packet = ipv6(
      tcp({
        srcPort: 40000,
        dstPort: 993,
        flags: TCP_SYN,
        options: filler(40),
        payload: filler(500),
      }),
      {
        protocol: 6,
        extensions: [{ type: IPV6_HOP_BY_HOP }, { type: IPV6_DESTINATION, length: 16 }],
      },
    )
    const frame = eth6(packet)
    expect(14 + 40 + 24 + 14).toBeLessThan(128)
    expect(14 + 40 + 24 + 60).toBeGreaterThan(128)
    expect(run(LINKTYPE_ETHERNET, frame, { snaplen: 128 })).toMatchObject({
      outcome: OUTCOME_IP,
      protocol: 6,
      srcPort: 40000,
      dstPort: 993,
      tcpFlags: TCP_SYN,
      ipLength: packet.length,
      payloadOffset: 14 + 40 + 24 + 60,
      payloadLength: 500,
    })
  })

  it('IPv4 with 40 bytes of options and TCP cut at 128 decodes with ports', () => {
    const frame = ethernet(
      ETHERTYPE_IPV4,
      ipv4(tcp({ options: filler(40), payload: filler(1000) }), {
        protocol: 6,
        options: filler(40),
      }),
      vlan100,
    )
    expect(run(LINKTYPE_ETHERNET, frame, { snaplen: 128 })).toMatchObject({
      outcome: OUTCOME_IP,
      srcPort: 43210,
      dstPort: 443,
      vlan: 100,
      ipLength: 60 + 60 + 1000,
    })
  })

  it('UDP cut right after its header decodes; a legal 1500-byte frame cut at 128', () => {
    const frame = eth4(ipv4(udp({ payload: filler(1472) }), { protocol: 17 }))
    expect(frame.length).toBe(1514)
    expect(run(LINKTYPE_ETHERNET, frame, { snaplen: 42 })).toMatchObject({
      outcome: OUTCOME_IP,
      srcPort: 53000,
      payloadLength: 1472,
    })
    expect(run(LINKTYPE_ETHERNET, frame, { snaplen: 128 })).toMatchObject({ outcome: OUTCOME_IP })
  })

  it('the same frame with its original length understated is malformed', () => {
    const frame = eth4(ipv4(udp({ payload: filler(1472) }), { protocol: 17 }))
    expect(run(LINKTYPE_ETHERNET, frame, { snaplen: 128, originalLength: 1000 })).toMatchObject({
      outcome: OUTCOME_MALFORMED,
      malformed: 'bad-ipv4-total-length',
    })
  })
})

describe('reuse', () => {
  it('resets every field between packets', () => {
    const out = new DecodedPacket()
    const fresh = new DecodedPacket()
    const first = ethernet(
      ETHERTYPE_IPV6,
      ipv6(udp(), { protocol: 17, extensions: [{ type: IPV6_FRAGMENT, more: true }] }),
      qinq,
    )
    decodePacket(LINKTYPE_ETHERNET, first, 0, first.length, first.length, out)
    expect(out).toMatchObject({ outcome: OUTCOME_IP, fragment: true, vlan: 4001, srcPort: 53000 })
    const second = ethernet(ETHERTYPE_ARP, arp())
    decodePacket(LINKTYPE_ETHERNET, second, 0, second.length, second.length, out)
    decodePacket(LINKTYPE_ETHERNET, second, 0, second.length, second.length, fresh)
    expect(out).toEqual(fresh)
    const third = filler(60)
    decodePacket(LINKTYPE_RAW, third, 0, 60, 60, out)
    decodePacket(LINKTYPE_RAW, third, 0, 60, 60, fresh)
    expect(out).toEqual(fresh)
  })
})
