import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import type { IntervalAggregates } from '../../../agent/aggregate/aggregator.ts'
import { TrafficCounter } from '../../../agent/aggregate/traffic.ts'
import { formatAddress } from '../../../agent/decode/address.ts'
import { LINKTYPE_ETHERNET, MALFORMED_REASONS } from '../../../agent/decode/packet.ts'
import { PcapReader } from '../../../common/pcap/pcap-reader.ts'
import { SERVICE_NAMES, SERVICE_TABLE } from '../../../protocol/services.ts'
import {
  DIRECTIONS,
  HOST_METRICS,
  PEER_CLASSES,
  TRANSPORTS,
  UsageContribution,
} from '../../../protocol/v1.ts'
import { buildPcap } from '../../common/pcap/pcap-writer.ts'
import {
  arp,
  bytes,
  ETHERTYPE_ARP,
  ETHERTYPE_IPV4,
  ETHERTYPE_IPV6,
  ethernet,
  filler,
  ipv4,
  ipv6,
  tcp,
  udp,
} from '../decode/frames.ts'
import {
  aggregator,
  byKey,
  classify,
  feed,
  HOST,
  keysOf,
  options,
  type PacketSpec,
  packet,
} from './harness.ts'

const host = { mode: 'host', local: HOST } as const

describe('direction', () => {
  it('host mode: relative to the host’s own addresses', () => {
    const agg = aggregator(host)
    const packets: PacketSpec[] = [
      { src: '10.1.2.3', dst: '93.184.216.34', sport: 50000, dport: 443 },
      { src: '93.184.216.34', dst: '10.1.2.3', sport: 443, dport: 50000 },
      { src: '10.1.2.3', dst: '10.1.2.3', proto: 'udp', sport: 40000, dport: 53 },
      { src: '10.1.9.9', dst: '10.1.2.3', sport: 51000, dport: 22 },
      { src: '10.1.2.3', dst: '10.1.9.9', sport: 52000, dport: 22 },
      { src: '2001:db8:1::3', dst: '2001:4860::8888', proto: 'udp', sport: 50000, dport: 443 },
      { src: '2001:4860::8888', dst: '2001:db8:1::3', proto: 'udp', sport: 443, dport: 50000 },
      { src: '2001:db8:1::3', dst: '2001:db8:1::3', proto: 'icmpv6' },
    ]
    for (const p of packets) feed(agg, packet(p))
    expect(keysOf(agg.drain(0))).toEqual(
      [
        'outbound v4 tcp https internet',
        'inbound v4 tcp https internet',
        'internal v4 udp dns same-site',
        'inbound v4 tcp ssh same-site',
        'outbound v4 tcp ssh same-site',
        'outbound v6 udp quic internet',
        'inbound v6 udp quic internet',
        'internal v6 icmpv6 icmpv6 same-site',
      ].sort(),
    )
  })

  it('host mode: a packet neither from nor to the host counts as received, its peer the sender or the group', () => {
    // In host mode anything not sent by the host is inbound; the peer class is the sender's,
    // except for packets sent to a group address, which are multicast-broadcast.
    expect(classify({ src: '10.1.9.9', dst: '10.1.9.8', sport: 50000, dport: 80 }, host)).toBe(
      'inbound v4 tcp http same-site',
    )
    expect(
      classify(
        { src: '10.1.9.9', dst: '224.0.0.251', proto: 'udp', sport: 5353, dport: 5353 },
        host,
      ),
    ).toBe('inbound v4 udp mdns multicast-broadcast')
    expect(
      classify(
        { src: '10.1.2.3', dst: '224.0.0.251', proto: 'udp', sport: 5353, dport: 5353 },
        host,
      ),
    ).toBe('outbound v4 udp mdns multicast-broadcast')
  })

  it('host mode: the host’s addresses are same-site even outside the site prefixes', () => {
    const setup = { mode: 'host', local: ['192.0.2.7', '127.0.0.1'], site: [] } as const
    expect(classify({ src: '192.0.2.7', dst: '192.0.2.7', sport: 1, dport: 443 }, setup)).toBe(
      'internal v4 tcp https same-site',
    )
    expect(classify({ src: '192.0.2.7', dst: '10.1.9.9', sport: 5, dport: 443 }, setup)).toBe(
      'outbound v4 tcp https organisation',
    )
    expect(classify({ src: '198.51.100.1', dst: '192.0.2.7', sport: 443, dport: 9 }, setup)).toBe(
      'inbound v4 tcp https internet',
    )
    expect(classify({ src: '127.0.0.1', dst: '127.0.0.1', sport: 9, dport: 80 }, setup)).toBe(
      'internal v4 tcp http same-site',
    )
  })

  it('gateway mode: relative to the site prefixes (inbound, outbound, internal, transit)', () => {
    const agg = aggregator({ mode: 'gateway' })
    const udp53 = { proto: 'udp', sport: 40000, dport: 53 } as const
    const packets: PacketSpec[] = [
      { src: '10.1.2.3', dst: '8.8.8.8', ...udp53 },
      { src: '8.8.8.8', dst: '10.1.2.3', proto: 'udp', sport: 53, dport: 40000 },
      { src: '10.1.2.3', dst: '10.1.9.9', ...udp53 },
      { src: '10.2.0.5', dst: '8.8.8.8', ...udp53 },
      { src: '8.8.8.8', dst: '10.2.0.5', proto: 'udp', sport: 53, dport: 40000 },
      { src: '10.1.2.3', dst: '172.16.0.1', ...udp53 },
      { src: '172.16.0.1', dst: '10.1.2.3', proto: 'udp', sport: 53, dport: 40000 },
      { src: '10.1.2.3', dst: '224.0.0.251', proto: 'udp', sport: 5353, dport: 5353 },
      { src: '0.0.0.0', dst: '255.255.255.255', proto: 'udp', sport: 68, dport: 67 },
      { src: '2001:db8:1::5', dst: 'ff02::fb', proto: 'udp', sport: 5353, dport: 5353 },
      { src: '2001:db8:1::5', dst: 'fe80::1', proto: 'icmpv6' },
      { src: 'fe80::1', dst: 'ff02::1', proto: 'icmpv6' },
      { src: '2001:db8:2::9', dst: '2001:db8:1::5', sport: 443, dport: 50000 },
      { src: 'fd00::1', dst: '2001:db8:1::5', sport: 22, dport: 50000 },
      { src: '2001:db8:1:ffff::1', dst: '2001:db8:1::5', sport: 3389, dport: 50000 },
    ]
    for (const p of packets) feed(agg, packet(p))
    expect(keysOf(agg.drain(0))).toEqual(
      [
        'outbound v4 udp dns internet',
        'inbound v4 udp dns internet',
        'internal v4 udp dns same-site',
        'transit v4 udp dns internet',
        'transit v4 udp dns organisation',
        'outbound v4 udp dns organisation',
        'inbound v4 udp dns organisation',
        'outbound v4 udp mdns multicast-broadcast',
        'transit v4 udp dhcp multicast-broadcast',
        'outbound v6 udp mdns multicast-broadcast',
        'outbound v6 icmpv6 icmpv6 same-site',
        'transit v6 icmpv6 icmpv6 multicast-broadcast',
        'inbound v6 tcp https internet',
        'inbound v6 tcp ssh organisation',
        'internal v6 tcp rdp same-site',
      ].sort(),
    )
  })

  it('gateway mode without site prefixes: everything is transit', () => {
    expect(classify({ src: '10.1.2.3', dst: '8.8.8.8', sport: 1, dport: 80 }, { site: [] })).toBe(
      'transit v4 tcp http internet',
    )
  })
})

describe('peer class', () => {
  // From a site host to each address: outbound (or internal), and the peer is the destination.
  const cases: [string, string][] = [
    ['127.0.0.1', 'same-site'],
    ['127.255.255.254', 'same-site'],
    ['169.254.1.1', 'same-site'],
    ['169.255.0.1', 'internet'],
    ['10.1.200.1', 'same-site'],
    ['10.200.0.1', 'organisation'],
    ['172.16.0.1', 'organisation'],
    ['172.31.255.255', 'organisation'],
    ['172.32.0.1', 'internet'],
    ['192.168.1.1', 'organisation'],
    ['100.64.0.1', 'organisation'],
    ['100.127.255.255', 'organisation'],
    ['100.128.0.1', 'internet'],
    ['11.0.0.1', 'internet'],
    ['223.255.255.255', 'internet'],
    ['224.0.0.1', 'multicast-broadcast'],
    ['239.255.255.250', 'multicast-broadcast'],
    ['240.0.0.1', 'internet'],
    ['255.255.255.254', 'internet'],
    ['255.255.255.255', 'multicast-broadcast'],
    ['::1', 'same-site'],
    ['::2', 'internet'],
    ['fe80::1', 'same-site'],
    ['febf:ffff::1', 'same-site'],
    ['fec0::1', 'internet'],
    ['fc00::1', 'organisation'],
    ['fdff:ffff::1', 'organisation'],
    ['fe00::1', 'internet'],
    ['ff02::fb', 'multicast-broadcast'],
    ['ff0e::1', 'multicast-broadcast'],
    ['feff::1', 'internet'],
    ['2001:db8:1:ffff::1', 'same-site'],
    ['2001:db8:2::1', 'internet'],
    ['2606:4700::1111', 'internet'],
  ]
  it.each(cases)('%s is %s', (address, peer) => {
    const src = address.includes(':') ? '2001:db8:1::5' : '10.1.2.3'
    const row = classify({ src, dst: address, proto: 'udp', sport: 50000, dport: 50001 })
    expect(row.split(' ')[4]).toBe(peer)
    // Inbound from it: the peer is the source.
    const back = classify({ src: address, dst: src, proto: 'udp', sport: 50001, dport: 50000 })
    expect(back.split(' ')[4]).toBe(peer)
  })

  it('organisation prefixes are configurable; none means internet', () => {
    const spec = { src: '10.1.2.3', dst: '192.168.1.1', sport: 1, dport: 80 }
    expect(classify(spec, { organisation: [] })).toBe('outbound v4 tcp http internet')
    expect(classify({ ...spec, dst: '203.0.113.9' }, { organisation: ['203.0.113.0/24'] })).toBe(
      'outbound v4 tcp http organisation',
    )
  })
})

describe('service', () => {
  const service = (spec: Partial<PacketSpec>) =>
    classify({ src: '10.1.2.3', dst: '10.1.9.9', ...spec }).split(' ')[3]

  it('every port of the service table names its service, from either side', () => {
    for (const entry of SERVICE_TABLE) {
      for (const transport of ['tcp', 'udp'] as const) {
        for (const port of entry[transport] ?? []) {
          expect(
            service({ proto: transport, sport: 50000, dport: port }),
            `${transport}/${port}`,
          ).toBe(entry.name)
          expect(
            service({ proto: transport, sport: port, dport: 50000 }),
            `${transport}/${port}`,
          ).toBe(entry.name)
        }
      }
    }
  })

  it('ports are per transport', () => {
    expect(service({ proto: 'tcp', sport: 50000, dport: 443 })).toBe('https')
    expect(service({ proto: 'udp', sport: 50000, dport: 443 })).toBe('quic')
    expect(service({ proto: 'udp', sport: 50000, dport: 80 })).toBe('other-udp')
    expect(service({ proto: 'tcp', sport: 50000, dport: 123 })).toBe('other-tcp')
    expect(service({ proto: 'tcp', sport: 50000, dport: 5353 })).toBe('other-tcp')
  })

  it('both ports well-known: the lower port names it', () => {
    expect(service({ proto: 'tcp', sport: 443, dport: 22 })).toBe('ssh')
    expect(service({ proto: 'tcp', sport: 22, dport: 443 })).toBe('ssh')
    expect(service({ proto: 'tcp', sport: 8080, dport: 53 })).toBe('dns')
    expect(service({ proto: 'tcp', sport: 53, dport: 8080 })).toBe('dns')
    expect(service({ proto: 'udp', sport: 123, dport: 53 })).toBe('dns')
    expect(service({ proto: 'udp', sport: 5353, dport: 5353 })).toBe('mdns')
    expect(service({ proto: 'udp', sport: 68, dport: 67 })).toBe('dhcp')
  })

  it('no well-known port: other-tcp or other-udp', () => {
    expect(service({ proto: 'tcp', sport: 50000, dport: 50001 })).toBe('other-tcp')
    expect(service({ proto: 'udp', sport: 50000, dport: 50001 })).toBe('other-udp')
    expect(service({ proto: 'tcp', sport: 0, dport: 0 })).toBe('other-tcp')
    expect(service({ proto: 'udp', sport: 65535, dport: 1 })).toBe('other-udp')
  })

  it('a non-first fragment has no ports: other-tcp or other-udp; a first fragment has them', () => {
    const v4 = { src: '10.1.2.3', dst: '10.1.9.9' }
    const v6 = { src: '2001:db8:1::5', dst: '2001:db8:1::9' }
    expect(classify({ ...v4, proto: 'udp', sport: 53, dport: 40000, moreFragments: true })).toBe(
      'internal v4 udp dns same-site',
    )
    expect(classify({ ...v4, proto: 'udp', fragmentOffset: 185 })).toBe(
      'internal v4 udp other-udp same-site',
    )
    expect(classify({ ...v4, proto: 'tcp', fragmentOffset: 1, moreFragments: true })).toBe(
      'internal v4 tcp other-tcp same-site',
    )
    expect(classify({ ...v4, proto: 'icmp', fragmentOffset: 3 })).toBe(
      'internal v4 icmp icmp same-site',
    )
    expect(classify({ ...v6, proto: 'udp', sport: 40000, dport: 53, moreFragments: true })).toBe(
      'internal v6 udp dns same-site',
    )
    expect(classify({ ...v6, proto: 'udp', fragmentOffset: 181 })).toBe(
      'internal v6 udp other-udp same-site',
    )
    expect(classify({ ...v6, proto: 'tcp', fragmentOffset: 2 })).toBe(
      'internal v6 tcp other-tcp same-site',
    )
  })

  it('the later fragments of a datagram start no flow of their own', () => {
    const agg = aggregator()
    const ends = { src: '10.1.2.3', dst: '10.1.9.9' }
    feed(agg, packet({ ...ends, proto: 'udp', sport: 40000, dport: 53, moreFragments: true }))
    feed(agg, packet({ ...ends, proto: 'udp', fragmentOffset: 185, moreFragments: true }))
    feed(agg, packet({ ...ends, proto: 'udp', fragmentOffset: 370 }))
    const counts = byKey(agg.drain(0).usage)
    expect(counts['internal v4 udp dns same-site']).toMatchObject({ packets: 1, flows: 1 })
    expect(counts['internal v4 udp other-udp same-site']).toMatchObject({ packets: 2, flows: 0 })
  })

  it('ICMP, ICMPv6 and other protocols', () => {
    const v4 = { src: '10.1.2.3', dst: '8.8.4.4' }
    const v6 = { src: '2001:db8:1::5', dst: '2001:4860::8844' }
    expect(classify({ ...v4, proto: 'icmp' })).toBe('outbound v4 icmp icmp internet')
    expect(classify({ ...v6, proto: 'icmpv6' })).toBe('outbound v6 icmpv6 icmpv6 internet')
    expect(classify({ ...v4, proto: 47 })).toBe('outbound v4 other other internet')
    expect(classify({ ...v4, proto: 132 })).toBe('outbound v4 other other internet')
    expect(classify({ ...v6, proto: 50 })).toBe('outbound v6 other other internet')
    expect(classify({ ...v6, proto: 59 })).toBe('outbound v6 other other internet')
  })

  it('IPv6: the transport after the extension headers names the service', () => {
    const extensions = [{ type: 0 }, { type: 60 }, { type: 43, length: 24 }, { type: 51 }]
    expect(
      classify({
        src: '2001:db8:1::5',
        dst: '2001:db8:9::1',
        sport: 50000,
        dport: 443,
        extensions,
      }),
    ).toBe('outbound v6 tcp https internet')
    expect(
      classify({
        src: '2001:db8:1::5',
        dst: '2001:db8:9::1',
        proto: 'icmpv6',
        extensions: [{ type: 0 }],
      }),
    ).toBe('outbound v6 icmpv6 icmpv6 internet')
  })
})

describe('bytes', () => {
  it('are the frame’s original length, not the captured length nor the IP length', () => {
    const agg = aggregator(host)
    const big = packet({ src: '10.1.2.3', dst: '10.1.9.9', sport: 5000, dport: 80, payload: 1460 })
    expect(big.length).toBe(1514)
    feed(agg, big, { snaplen: 128 })
    // A snaplen-cut record whose original length says 9000 bytes (a jumbo frame).
    feed(agg, big.subarray(0, 128), { originalLength: 9014 })
    // A short IP packet in a padded minimum Ethernet frame (60 bytes): bytes are 60.
    const small = packet({ src: '10.1.2.3', dst: '10.1.9.9', proto: 'udp', sport: 5000, dport: 53 })
    const padded = new Uint8Array(60)
    padded.set(small)
    expect(small.length).toBeLessThan(60)
    feed(agg, padded)
    const out = agg.drain(0)
    expect(byKey(out.usage)).toEqual({
      'outbound v4 tcp http same-site': { bytes: 1514 + 9014, packets: 2, flows: 1 },
      'outbound v4 udp dns same-site': { bytes: 60, packets: 1, flows: 1 },
    })
    expect(out.counters.bytes).toBe(1514 + 9014 + 60)
    expect(out.counters.packets).toBe(3)
  })

  it('through TrafficCounter and an in-memory pcap: original lengths, µs and ns timestamps', () => {
    for (const nanosecond of [false, true]) {
      const counter = new TrafficCounter(options({ ...host, flowIdleMs: 1000 }))
      const frame = packet({
        src: '10.1.2.3',
        dst: '1.1.1.1',
        sport: 5000,
        dport: 443,
        payload: 1460,
      })
      const unit = nanosecond ? 1_000_000 : 1000
      const records = [0, 999, 2001].map((ms) => ({
        tsSeconds: 1_700_000_000 + Math.floor(ms / 1000),
        tsFraction: (ms % 1000) * unit,
        data: frame.subarray(0, 128),
        originalLength: frame.length,
      }))
      const reader = new PcapReader(counter.onPacket, counter.onHeader)
      reader.push(buildPcap(records, { snaplen: 128, nanosecond, linkType: LINKTYPE_ETHERNET }))
      reader.end()
      const out = counter.aggregator.drain(Number.POSITIVE_INFINITY)
      // 0 → 999 ms is the same flow; 999 → 2001 ms is idle for more than 1000 ms: new again.
      expect(byKey(out.usage)).toEqual({
        'outbound v4 tcp https internet': { bytes: 3 * 1514, packets: 3, flows: 2 },
      })
      expect(counter.aggregator.total.bytes).toBe(3 * 1514)
    }
  })
})

describe('flows', () => {
  const a = '10.1.2.3'
  const b = '203.0.113.5'

  it('one conversation in both directions is one flow, counted in the bucket of its first packet', () => {
    const agg = aggregator(host)
    feed(agg, packet({ src: a, dst: b, sport: 50000, dport: 443 }))
    feed(agg, packet({ src: b, dst: a, sport: 443, dport: 50000 }))
    feed(agg, packet({ src: a, dst: b, sport: 50000, dport: 443 }))
    feed(agg, packet({ src: a, dst: b, sport: 50001, dport: 443 }))
    // Same addresses and ports, another transport: another flow.
    feed(agg, packet({ src: b, dst: a, proto: 'udp', sport: 443, dport: 50000 }))
    expect(byKey(agg.drain(0).usage)).toEqual({
      'outbound v4 tcp https internet': { bytes: 3 * 64, packets: 3, flows: 2 },
      'inbound v4 tcp https internet': { bytes: 64, packets: 1, flows: 0 },
      'inbound v4 udp quic internet': { bytes: 52, packets: 1, flows: 1 },
    })
  })

  it('ICMP has no ports: everything between two addresses is one flow', () => {
    const agg = aggregator(host)
    feed(agg, packet({ src: a, dst: b, proto: 'icmp' }))
    feed(agg, packet({ src: b, dst: a, proto: 'icmp' }))
    feed(agg, packet({ src: a, dst: b, proto: 'icmp' }))
    feed(agg, packet({ src: a, dst: '203.0.113.6', proto: 'icmp' }))
    const rows = byKey(agg.drain(0).usage)
    expect(rows['outbound v4 icmp icmp internet']?.flows).toBe(2)
    expect(rows['inbound v4 icmp icmp internet']?.flows).toBe(0)
  })

  it('the same address at both ends (loopback) in both directions is one flow', () => {
    const agg = aggregator({ mode: 'host', local: ['127.0.0.1', '::1'] })
    feed(agg, packet({ src: '127.0.0.1', dst: '127.0.0.1', sport: 40000, dport: 80 }))
    feed(agg, packet({ src: '127.0.0.1', dst: '127.0.0.1', sport: 80, dport: 40000 }))
    feed(agg, packet({ src: '::1', dst: '::1', sport: 40000, dport: 80 }))
    feed(agg, packet({ src: '::1', dst: '::1', sport: 80, dport: 40000 }))
    expect(byKey(agg.drain(0).usage)).toEqual({
      'internal v4 tcp http same-site': { bytes: 128, packets: 2, flows: 1 },
      'internal v6 tcp http same-site': { bytes: 2 * 84, packets: 2, flows: 1 },
    })
  })

  it('a flow idle for more than flowIdleMs counts again; each packet refreshes it', () => {
    const agg = aggregator({ ...host, flowIdleMs: 1000 })
    const p = packet({ src: a, dst: b, proto: 'udp', sport: 5000, dport: 53 })
    for (const timeMs of [0, 1000, 2001, 2900, 3800, 4700, 5701]) feed(agg, p, { timeMs })
    expect(agg.drain(6000).usage[0]?.flows).toBe(3)

    const byDefault = aggregator(host)
    for (const timeMs of [0, 60_000, 120_001]) feed(byDefault, p, { timeMs })
    expect(byDefault.drain(0).usage[0]?.flows).toBe(2)
  })

  it('drain resets the interval and forgets only the flows idle at its time', () => {
    const agg = aggregator({ ...host, flowIdleMs: 1000 })
    const p = packet({ src: a, dst: b, sport: 5000, dport: 443 })
    const q = packet({ src: a, dst: b, sport: 5001, dport: 443 })
    feed(agg, p, { timeMs: 0 })
    feed(agg, q, { timeMs: 500 })
    const first = agg.drain(1000)
    expect(first.usage[0]).toMatchObject({ packets: 2, flows: 2 })
    expect(first.counters).toMatchObject({ packets: 2, decoded: 2, bytes: 128 })
    expect(first.traffic.length).toBe(2)
    expect(agg.trackedFlows).toBe(2)

    // Nothing happened since: an empty interval.
    const empty = agg.drain(1200)
    expect(empty.usage).toEqual([])
    expect(empty.traffic).toEqual([])
    expect(empty.counters).toEqual({
      packets: 0,
      bytes: 0,
      decoded: 0,
      nonIp: 0,
      malformed: new Map(),
      flowTableFull: 0,
    })
    // p (last seen 0) is idle at 1200, q (500) is not.
    expect(agg.trackedFlows).toBe(1)

    feed(agg, q, { timeMs: 1400 })
    feed(agg, p, { timeMs: 1400 })
    expect(agg.drain(1500).usage[0]).toMatchObject({ packets: 2, flows: 1 })
    expect(agg.trackedFlows).toBe(2)
    expect(agg.drain(Number.POSITIVE_INFINITY).usage).toEqual([])
    expect(agg.trackedFlows).toBe(0)
    expect(agg.total).toMatchObject({ packets: 4, decoded: 4, bytes: 4 * 64 })
  })

  it('maxFlows bounds the table: flows beyond it are still counted, as new each time', () => {
    const agg = aggregator({ ...host, maxFlows: 2 })
    const flow = (port: number) => packet({ src: a, dst: b, sport: port, dport: 443 })
    feed(agg, flow(1))
    feed(agg, flow(2))
    feed(agg, flow(3))
    expect(agg.trackedFlows).toBe(2)
    feed(agg, flow(3))
    feed(agg, flow(1))
    feed(agg, flow(2))
    const first = agg.drain(0)
    expect(first.usage[0]).toMatchObject({ packets: 6, flows: 4 })
    expect(first.counters.flowTableFull).toBe(2)

    feed(agg, flow(3), { timeMs: 1 })
    const second = agg.drain(1)
    expect(second.usage[0]).toMatchObject({ packets: 1, flows: 1 })
    expect(second.counters.flowTableFull).toBe(1)
    expect(agg.total.flowTableFull).toBe(3)

    // Once the table is emptied, the next flow fits.
    agg.drain(Number.POSITIVE_INFINITY)
    feed(agg, flow(3), { timeMs: 2 })
    feed(agg, flow(3), { timeMs: 3 })
    const third = agg.drain(3)
    expect(third.usage[0]).toMatchObject({ packets: 2, flows: 1 })
    expect(third.counters.flowTableFull).toBe(0)
  })
})

describe('malformed and non-IP frames', () => {
  it('are counted in the capture counters and never in usage or traffic', () => {
    const agg = aggregator(host)
    const good = packet({ src: '10.1.2.3', dst: '1.1.1.1', sport: 5000, dport: 443 })
    const frames: [Uint8Array, number][] = [
      [ethernet(ETHERTYPE_ARP, arp()), LINKTYPE_ETHERNET],
      [ethernet(0x88cc, filler(40)), LINKTYPE_ETHERNET],
      [ethernet(ETHERTYPE_IPV4, filler(10)), LINKTYPE_ETHERNET],
      [ethernet(ETHERTYPE_IPV4, ipv4(tcp(), { protocol: 6, version: 5 })), LINKTYPE_ETHERNET],
      [
        ethernet(ETHERTYPE_IPV6, ipv6(udp(), { protocol: 17, payloadLength: 900 })),
        LINKTYPE_ETHERNET,
      ],
      [ethernet(ETHERTYPE_IPV4, ipv4(tcp({ dataOffset: 3 }), { protocol: 6 })), LINKTYPE_ETHERNET],
      [bytes(1, 2, 3), LINKTYPE_ETHERNET],
      [good, 999],
    ]
    let total = 0
    for (const [frame, linkType] of frames) {
      feed(agg, frame, { linkType })
      total += frame.length
    }
    const bad = agg.drain(0)
    expect(bad.usage).toEqual([])
    expect(bad.traffic).toEqual([])
    expect(bad.counters).toEqual({
      packets: frames.length,
      bytes: total,
      decoded: 0,
      nonIp: 2,
      malformed: new Map([
        ['truncated-ipv4', 1],
        ['bad-ip-version', 1],
        ['bad-ipv6-payload-length', 1],
        ['bad-tcp-data-offset', 1],
        ['truncated-link', 1],
        ['unsupported-link-type', 1],
      ]),
      flowTableFull: 0,
    })
    feed(agg, good)
    const after = agg.drain(0)
    expect(after.counters).toMatchObject({ packets: 1, decoded: 1, nonIp: 0, malformed: new Map() })
    expect(after.usage).toHaveLength(1)
    expect(agg.total).toMatchObject({ packets: frames.length + 1, decoded: 1, nonIp: 2 })
    expect(agg.total.malformed.get('truncated-ipv4')).toBe(1)
  })
})

// ---------------------------------------------------------------------------------------------
// Privacy: whatever the traffic, the output holds only the closed classes and counts.

const arbAddress4 = fc.uint8Array({ minLength: 4, maxLength: 4 })
const arbAddress6 = fc.oneof(
  fc.uint8Array({ minLength: 16, maxLength: 16 }),
  // Addresses near the interesting prefixes (site, link-local, multicast, loopback).
  fc
    .tuple(
      fc.constantFrom(
        [0x20, 0x01, 0x0d, 0xb8, 0, 1],
        [0xfe, 0x80],
        [0xff, 0x02],
        [0xfd],
        [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff],
      ),
      fc.uint8Array({ minLength: 16, maxLength: 16 }),
    )
    .map(([head, rest]) => {
      const out = Uint8Array.from(rest)
      out.set(head)
      return out
    }),
)
const arbPort = fc.oneof(
  fc.integer({ min: 0, max: 65535 }),
  fc.constantFrom(...SERVICE_TABLE.flatMap((s) => [...(s.tcp ?? []), ...(s.udp ?? [])])),
)
const arbProtocol = fc.oneof(fc.constantFrom(6, 17, 1, 58), fc.integer({ min: 0, max: 255 }))

interface RandomPacket {
  v6: boolean
  src: Uint8Array
  dst: Uint8Array
  protocol: number
  sport: number
  dport: number
  fragmentOffset: number
  payload: number
  originalExtra: number
  timeMs: number
}

const arbPacket: fc.Arbitrary<RandomPacket> = fc.boolean().chain((v6) =>
  fc.record({
    v6: fc.constant(v6),
    src: v6 ? arbAddress6 : arbAddress4,
    dst: v6 ? arbAddress6 : arbAddress4,
    protocol: arbProtocol,
    sport: arbPort,
    dport: arbPort,
    fragmentOffset: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 8191 })),
    payload: fc.integer({ min: 0, max: 64 }),
    originalExtra: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 9000 })),
    timeMs: fc.integer({ min: 0, max: 300_000 }),
  }),
)

function rawFrame(p: RandomPacket): Uint8Array {
  const src = formatAddress(p.src, 0, p.v6 ? 6 : 4)
  const dst = formatAddress(p.dst, 0, p.v6 ? 6 : 4)
  const spec: PacketSpec = {
    src,
    dst,
    proto: p.protocol,
    sport: p.sport,
    dport: p.dport,
    payload: p.payload,
  }
  if (p.fragmentOffset > 0) spec.fragmentOffset = p.fragmentOffset
  // The builder picks the IP version by the destination's text.
  return packet(spec)
}

const DIRECTION_SET = new Set<string>(DIRECTIONS)
const TRANSPORT_SET = new Set<string>(TRANSPORTS)
const PEER_SET = new Set<string>(PEER_CLASSES)
const SERVICE_SET = new Set<string>(SERVICE_NAMES)
const METRIC_SET = new Set<string>(HOST_METRICS)
const REASON_SET = new Set<string>(MALFORMED_REASONS)
const USAGE_KEYS = [
  'bytes',
  'direction',
  'flows',
  'ip_version',
  'packets',
  'peer_class',
  'service',
  'transport',
]

const isCount = (value: unknown) =>
  typeof value === 'number' && Number.isInteger(value) && value >= 0

function checkClosed(out: IntervalAggregates): void {
  for (const row of out.usage) {
    expect(Object.keys(row).sort()).toEqual(USAGE_KEYS)
    expect(UsageContribution.safeParse(row).success).toBe(true)
    expect(DIRECTION_SET.has(row.direction)).toBe(true)
    expect(TRANSPORT_SET.has(row.transport)).toBe(true)
    expect(PEER_SET.has(row.peer_class)).toBe(true)
    expect(SERVICE_SET.has(row.service)).toBe(true)
    expect([4, 6]).toContain(row.ip_version)
    for (const count of [row.bytes, row.packets, row.flows]) expect(isCount(count)).toBe(true)
    expect(row.packets).toBeGreaterThan(0)
    expect(row.flows).toBeLessThanOrEqual(row.packets)
  }
  for (const sample of out.traffic) {
    expect(Object.keys(sample).sort()).toEqual(['attributes', 'metric', 'value'])
    expect(METRIC_SET.has(sample.metric)).toBe(true)
    expect(isCount(sample.value)).toBe(true)
    expect(Object.keys(sample.attributes).sort()).toEqual(['network.transport', 'tally.direction'])
    expect(DIRECTION_SET.has(sample.attributes['tally.direction'] ?? '')).toBe(true)
    expect(TRANSPORT_SET.has(sample.attributes['network.transport'] ?? '')).toBe(true)
  }
  for (const [reason, count] of out.counters.malformed) {
    expect(REASON_SET.has(reason)).toBe(true)
    expect(isCount(count)).toBe(true)
  }
  const { malformed: _, ...scalars } = out.counters
  for (const value of Object.values(scalars)) expect(isCount(value)).toBe(true)
}

describe('privacy', () => {
  it('random traffic: no address in the output, only closed classes and counts', () => {
    fc.assert(
      fc.property(
        fc.array(arbPacket, { minLength: 1, maxLength: 40 }),
        fc.constantFrom('host', 'gateway'),
        (packets, mode) => {
          const agg = aggregator({ mode, local: HOST })
          const addresses = new Set<string>()
          let bytesIn = 0
          for (const p of packets) {
            const frame = rawFrame(p)
            addresses.add(formatAddress(p.src, 0, p.v6 ? 6 : 4))
            addresses.add(formatAddress(p.dst, 0, p.v6 ? 6 : 4))
            const originalLength = frame.length + p.originalExtra
            bytesIn += originalLength
            feed(agg, frame, { timeMs: p.timeMs, originalLength, snaplen: 128 })
          }
          const out = agg.drain(300_000)
          checkClosed(out)
          const json = JSON.stringify({
            ...out,
            counters: { ...out.counters, malformed: Object.fromEntries(out.counters.malformed) },
          })
          for (const address of addresses) expect(json).not.toContain(address)
          // Nothing is lost: every frame is in the counters, every IP one in usage and traffic.
          const { counters } = out
          expect(counters.packets).toBe(packets.length)
          expect(counters.bytes).toBe(bytesIn)
          const malformed = [...counters.malformed.values()].reduce((n, c) => n + c, 0)
          expect(counters.decoded + counters.nonIp + malformed).toBe(packets.length)
          const usagePackets = out.usage.reduce((n, u) => n + u.packets, 0)
          const usageBytes = out.usage.reduce((n, u) => n + u.bytes, 0)
          expect(usagePackets).toBe(counters.decoded)
          const traffic = (metric: string) =>
            out.traffic.filter((s) => s.metric === metric).reduce((n, s) => n + s.value, 0)
          expect(traffic('tally.traffic.packets')).toBe(usagePackets)
          expect(traffic('tally.traffic.bytes')).toBe(usageBytes)
        },
      ),
      { numRuns: 300 },
    )
  })

  it('Tier T traffic is the usage summed by direction and transport', () => {
    const agg = aggregator(host)
    feed(agg, packet({ src: '10.1.2.3', dst: '1.1.1.1', sport: 5000, dport: 443 }))
    feed(agg, packet({ src: '10.1.2.3', dst: '10.1.9.9', sport: 5000, dport: 22 }))
    feed(agg, packet({ src: '1.1.1.1', dst: '10.1.2.3', proto: 'udp', sport: 53, dport: 5000 }))
    const { traffic } = agg.drain(0)
    expect(traffic).toEqual([
      {
        metric: 'tally.traffic.bytes',
        value: 52,
        attributes: { 'tally.direction': 'inbound', 'network.transport': 'udp' },
      },
      {
        metric: 'tally.traffic.packets',
        value: 1,
        attributes: { 'tally.direction': 'inbound', 'network.transport': 'udp' },
      },
      {
        metric: 'tally.traffic.bytes',
        value: 128,
        attributes: { 'tally.direction': 'outbound', 'network.transport': 'tcp' },
      },
      {
        metric: 'tally.traffic.packets',
        value: 2,
        attributes: { 'tally.direction': 'outbound', 'network.transport': 'tcp' },
      },
    ])
  })
})
