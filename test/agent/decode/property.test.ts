import fc from 'fast-check'
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
  MALFORMED_REASONS,
  OUTCOME_IP,
  OUTCOME_MALFORMED,
  OUTCOME_NON_IP,
} from '../../../agent/decode/packet.ts'
import {
  arp,
  ETHERTYPE_ARP,
  ETHERTYPE_IPV4,
  ETHERTYPE_IPV6,
  ETHERTYPE_QINQ,
  ETHERTYPE_VLAN,
  ethernet,
  filler,
  IPV6_AH,
  IPV6_DESTINATION,
  IPV6_FRAGMENT,
  IPV6_HOP_BY_HOP,
  IPV6_ROUTING,
  type Ipv6Extension,
  icmp,
  ipv4,
  ipv6,
  loopLink,
  nullLink,
  sll,
  sll2,
  tcp,
  udp,
  type VlanTag,
} from './frames.ts'

const LINK_TYPES = [
  LINKTYPE_NULL,
  LINKTYPE_ETHERNET,
  LINKTYPE_RAW,
  LINKTYPE_LOOP,
  LINKTYPE_LINUX_SLL,
  LINKTYPE_IPV4,
  LINKTYPE_IPV6,
  LINKTYPE_LINUX_SLL2,
]

const linkType = fc.oneof(
  { weight: 8, arbitrary: fc.constantFrom(...LINK_TYPES) },
  { weight: 1, arbitrary: fc.integer({ min: -5, max: 70000 }) },
)

const reasons = new Set<string>(MALFORMED_REASONS)

function assert(condition: boolean, what: string, out: DecodedPacket): void {
  if (!condition) {
    const { buffer: _buffer, ...fields } = out
    throw new Error(`${what}: ${JSON.stringify(fields)}`)
  }
}

const isPort = (p: number): boolean => Number.isInteger(p) && p >= -1 && p <= 65535
const isByteOrNone = (b: number): boolean => Number.isInteger(b) && b >= -1 && b <= 255

/**
 * The invariants of one decode of `data[offset..offset+captured)` (plain checks, not `expect`,
 * to keep tens of thousands of runs fast).
 */
function check(
  out: DecodedPacket,
  data: Uint8Array,
  offset: number,
  captured: number,
  outcomes: Set<number>,
): void {
  const o = out.outcome
  assert(o === OUTCOME_IP || o === OUTCOME_NON_IP || o === OUTCOME_MALFORMED, 'outcome', out)
  outcomes.add(o)
  assert(out.buffer === data, 'buffer', out)
  assert(isPort(out.srcPort) && isPort(out.dstPort), 'ports', out)
  assert(isByteOrNone(out.tcpFlags) && isByteOrNone(out.icmpType), 'flags/type', out)
  if (o === OUTCOME_MALFORMED) assert(reasons.has(out.malformed), 'reason', out)
  if (o === OUTCOME_NON_IP) {
    assert(out.nonIp === 'arp' || out.nonIp === 'other', 'nonIp', out)
    assert(out.srcPort === -1 && out.dstPort === -1, 'non-IP ports', out)
  }
  if (o === OUTCOME_IP) {
    assert(out.ipVersion === 4 || out.ipVersion === 6, 'version', out)
    const size = out.ipVersion === 4 ? 4 : 16
    const end = Math.min(offset + captured, data.length)
    for (const at of [out.srcOffset, out.dstOffset, out.ipOffset]) {
      assert(Number.isInteger(at) && at >= offset, 'offset below the frame', out)
    }
    assert(out.srcOffset + size <= end && out.dstOffset + size <= end, 'address past end', out)
    assert(Number.isInteger(out.protocol) && out.protocol >= 0 && out.protocol <= 255, 'proto', out)
    if (out.srcPort >= 0) {
      // Ports come from a first fragment, from bytes that were captured.
      assert(out.firstFragment, 'ports of a non-first fragment', out)
      assert(out.transportOffset >= offset && out.transportOffset + 4 <= end, 'ports', out)
    }
    if (!out.fragment) assert(out.firstFragment, 'firstFragment without fragment', out)
  }
}

const FIELDS = Object.keys(new DecodedPacket()) as (keyof DecodedPacket)[]

/** Decodes into a dirty shared object and a fresh one: same result (every field is reset). */
const shared = new DecodedPacket()
function decodeBoth(
  link: number,
  data: Uint8Array,
  offset: number,
  captured: number,
  original: number,
): DecodedPacket {
  const fresh = new DecodedPacket()
  decodePacket(link, data, offset, captured, original, shared)
  decodePacket(link, data, offset, captured, original, fresh)
  for (const field of FIELDS) {
    assert(shared[field] === fresh[field], `field ${field} not reset`, shared)
  }
  return fresh
}

// Valid frames, built from random parameters.

const port = fc.integer({ min: 0, max: 65535 })
const v4addr = fc.ipV4()
const v6addr = fc.ipV6()

const transport4 = fc.oneof(
  fc
    .record({
      srcPort: port,
      dstPort: port,
      flags: fc.integer({ min: 0, max: 255 }),
      options: fc.uint8Array({ maxLength: 40 }),
      payload: fc.uint8Array({ maxLength: 64 }),
    })
    .map((o) => ({ protocol: 6, bytes: tcp(o), srcPort: o.srcPort, dstPort: o.dstPort })),
  fc
    .record({ srcPort: port, dstPort: port, payload: fc.uint8Array({ maxLength: 64 }) })
    .map((o) => ({ protocol: 17, bytes: udp(o), srcPort: o.srcPort, dstPort: o.dstPort })),
  fc
    .integer({ min: 0, max: 255 })
    .map((type) => ({ protocol: 1, bytes: icmp(type), srcPort: -1, dstPort: -1 })),
  fc
    .integer({ min: 0, max: 255 })
    .map((type) => ({ protocol: 58, bytes: icmp(type), srcPort: -1, dstPort: -1 })),
  fc
    .record({
      protocol: fc.constantFrom(2, 47, 50, 89, 132),
      payload: fc.uint8Array({ maxLength: 40 }),
    })
    .map((o) => ({ protocol: o.protocol, bytes: o.payload, srcPort: -1, dstPort: -1 })),
)

const extension: fc.Arbitrary<Ipv6Extension> = fc.oneof(
  fc.record({
    type: fc.constantFrom(IPV6_HOP_BY_HOP, IPV6_DESTINATION, IPV6_ROUTING),
    length: fc.integer({ min: 1, max: 4 }).map((n) => n * 8),
  }),
  fc.record({
    type: fc.constant(IPV6_AH),
    length: fc.integer({ min: 3, max: 8 }).map((n) => n * 4),
  }),
  fc.constant({ type: IPV6_FRAGMENT, more: true }),
)

interface ValidPacket {
  version: 4 | 6
  packet: Uint8Array
  protocol: number
  srcPort: number
  dstPort: number
}

const ipPacket: fc.Arbitrary<ValidPacket> = fc.oneof(
  fc
    .record({ t: transport4, src: v4addr, dst: v4addr, options: fc.uint8Array({ maxLength: 40 }) })
    .map(({ t, src, dst, options }) => ({
      version: 4 as const,
      packet: ipv4(t.bytes, { protocol: t.protocol, src, dst, options }),
      protocol: t.protocol,
      srcPort: t.srcPort,
      dstPort: t.dstPort,
    })),
  fc
    .record({
      t: transport4,
      src: v6addr,
      dst: v6addr,
      extensions: fc.array(extension, { maxLength: 5 }),
    })
    .map(({ t, src, dst, extensions }) => ({
      version: 6 as const,
      packet: ipv6(t.bytes, { protocol: t.protocol === 1 ? 58 : t.protocol, src, dst, extensions }),
      protocol: t.protocol === 1 ? 58 : t.protocol,
      srcPort: t.srcPort,
      dstPort: t.dstPort,
    })),
)

const vlans: fc.Arbitrary<VlanTag[]> = fc.oneof(
  fc.constant<VlanTag[]>([]),
  fc.integer({ min: 0, max: 4095 }).map((vid) => [{ tpid: ETHERTYPE_VLAN, vid }]),
  fc.tuple(fc.integer({ min: 0, max: 4095 }), fc.integer({ min: 0, max: 4095 })).map(([a, b]) => [
    { tpid: ETHERTYPE_QINQ, vid: a },
    { tpid: ETHERTYPE_VLAN, vid: b },
  ]),
)

interface ValidFrame extends ValidPacket {
  linkType: number
  frame: Uint8Array
  vlan: number
}

const validFrame: fc.Arbitrary<ValidFrame> = fc
  .record({ p: ipPacket, tags: vlans, link: fc.integer({ min: 0, max: 7 }) })
  .map(({ p, tags, link }) => {
    const type = p.version === 4 ? ETHERTYPE_IPV4 : ETHERTYPE_IPV6
    const family = p.version === 4 ? 2 : 28
    const vlan = tags.length > 0 && link <= 2 ? (tags[0] as VlanTag).vid : -1
    const frames: [number, Uint8Array][] = [
      [LINKTYPE_ETHERNET, ethernet(type, p.packet, tags)],
      [LINKTYPE_LINUX_SLL, sll(type, p.packet, tags)],
      [LINKTYPE_LINUX_SLL2, sll2(type, p.packet, tags)],
      [LINKTYPE_NULL, nullLink(family, p.packet, link % 2 === 0)],
      [LINKTYPE_LOOP, loopLink(family, p.packet)],
      [LINKTYPE_RAW, p.packet],
      [p.version === 4 ? LINKTYPE_IPV4 : LINKTYPE_IPV6, p.packet],
      [LINKTYPE_ETHERNET, ethernet(type, p.packet)],
    ]
    const [linkType, frame] = frames[link] as [number, Uint8Array]
    return { ...p, linkType, frame, vlan }
  })

const nonIpFrame = fc.constantFrom(
  [LINKTYPE_ETHERNET, ethernet(ETHERTYPE_ARP, arp())] as const,
  [LINKTYPE_LINUX_SLL, sll(ETHERTYPE_ARP, arp())] as const,
  [LINKTYPE_ETHERNET, ethernet(0x88cc, filler(60))] as const,
)

describe('decodePacket properties', () => {
  it('random bytes, any link type, any lengths: never throws, invariants hold', () => {
    const outcomes = new Set<number>()
    fc.assert(
      fc.property(
        linkType,
        fc.uint8Array({ maxLength: 160 }),
        fc.nat({ max: 16 }),
        fc.integer({ min: -8, max: 200 }),
        fc.integer({ min: -1, max: 70000 }),
        (link, body, pad, captureDelta, original) => {
          const data = new Uint8Array(pad + body.length)
          data.set(body, pad)
          // Sometimes claim more captured bytes than the buffer has.
          const captured = Math.max(
            0,
            body.length + (captureDelta > 100 ? captureDelta : -Math.abs(captureDelta)),
          )
          const out = decodeBoth(link, data, pad, captured, original)
          check(out, data, pad, captured, outcomes)
        },
      ),
      { numRuns: 20000 },
    )
    expect(outcomes.has(OUTCOME_MALFORMED)).toBe(true)
  })

  it('random bytes behind a valid link header reach every decoder', () => {
    const outcomes = new Set<number>()
    const headers: [number, Uint8Array][] = [
      [LINKTYPE_ETHERNET, ethernet(ETHERTYPE_IPV4, new Uint8Array(0))],
      [
        LINKTYPE_ETHERNET,
        ethernet(ETHERTYPE_IPV6, new Uint8Array(0), [{ tpid: ETHERTYPE_VLAN, vid: 5 }]),
      ],
      [LINKTYPE_LINUX_SLL, sll(ETHERTYPE_IPV6, new Uint8Array(0))],
      [LINKTYPE_LINUX_SLL2, sll2(ETHERTYPE_IPV4, new Uint8Array(0))],
      [LINKTYPE_NULL, nullLink(30, new Uint8Array(0))],
      [LINKTYPE_LOOP, loopLink(2, new Uint8Array(0))],
    ]
    fc.assert(
      fc.property(
        fc.nat({ max: headers.length - 1 }),
        fc.nat({ max: 3 }),
        fc.uint8Array({ minLength: 40, maxLength: 140 }),
        fc.nat({ max: 2000 }),
        (h, version, body, extra) => {
          const [link, header] = headers[h] as [number, Uint8Array]
          // Give the random IP header a plausible version nibble and lengths most of the time.
          if (version > 0) {
            const b = body
            if (header.at(-1) === 0xdd || header.at(-1) === 30) {
              b[0] = 0x60 | ((b[0] ?? 0) & 0x0f)
              b[4] = ((body.length - 40) >> 8) & 0xff
              b[5] = (body.length - 40) & 0xff
              b[6] = [0, 6, 17, 44, 58, 60][(b[6] ?? 0) % 6] ?? 0
            } else {
              b[0] = 0x45
              b[2] = (body.length >> 8) & 0xff
              b[3] = body.length & 0xff
              b[9] = [1, 6, 17][(b[9] ?? 0) % 3] ?? 6
            }
          }
          const frame = new Uint8Array(header.length + body.length)
          frame.set(header)
          frame.set(body, header.length)
          const out = decodeBoth(link, frame, 0, frame.length, frame.length + extra)
          check(out, frame, 0, frame.length, outcomes)
        },
      ),
      { numRuns: 20000 },
    )
    expect(outcomes.has(OUTCOME_IP)).toBe(true)
    expect(outcomes.has(OUTCOME_MALFORMED)).toBe(true)
  })

  it('valid frames decode to what they were built from, cut by any snaplen above the headers', () => {
    fc.assert(
      fc.property(validFrame, fc.nat({ max: 300 }), (f, snapExtra) => {
        const out = decodeBoth(f.linkType, f.frame, 0, f.frame.length, f.frame.length)
        check(out, f.frame, 0, f.frame.length, new Set())
        expect(out).toMatchObject({
          outcome: OUTCOME_IP,
          ipVersion: f.version,
          protocol: f.protocol,
          srcPort: f.srcPort,
          dstPort: f.dstPort,
          vlan: f.vlan,
        })
        // A snaplen that still covers the transport header's first 14 bytes changes nothing.
        const needed = out.transportOffset + 14
        const snap = Math.min(f.frame.length, needed + snapExtra)
        const cut = decodeBoth(f.linkType, f.frame, 0, snap, f.frame.length)
        expect(cut).toMatchObject({ outcome: OUTCOME_IP, srcPort: f.srcPort, dstPort: f.dstPort })
      }),
      { numRuns: 3000 },
    )
  })

  it('random mutations and truncations of valid frames: never throws, invariants hold', () => {
    const outcomes = new Set<number>()
    const frames = fc.oneof(
      { weight: 6, arbitrary: validFrame.map((f) => [f.linkType, f.frame] as const) },
      { weight: 1, arbitrary: nonIpFrame },
    )
    fc.assert(
      fc.property(
        frames,
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }),
        fc.nat(),
        fc.integer({ min: -100, max: 100 }),
        fc.boolean(),
        ([link, original], mutations, cutAt, lengthDelta, truncate) => {
          const frame = original.slice()
          for (const [at, value] of mutations)
            if (frame.length > 0) frame[at % frame.length] = value
          const captured = truncate ? cutAt % (frame.length + 1) : frame.length
          const out = decodeBoth(link, frame, 0, captured, frame.length + lengthDelta)
          check(out, frame, 0, captured, outcomes)
        },
      ),
      { numRuns: 20000 },
    )
    expect(outcomes.size).toBe(3)
  })
})
