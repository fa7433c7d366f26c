/**
 * Tally against tshark on the same capture files: real traffic from real programs (curl, dig,
 * ping) on loopback, captured by the real tcpdump; and a file of VLAN, QinQ and IPv6
 * extension-header frames built in memory. `tally agent aggregate FILE --json` runs as a user
 * would run it; tshark's fields are summed with the definitions of the README. Only 127.0.0.1
 * and ::1 carry traffic.
 */
import { execFile } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { SERVICE_TABLE } from '../../protocol/services.ts'
import {
  arp,
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
  IPV6_FRAGMENT,
  IPV6_HOP_BY_HOP,
  IPV6_ROUTING,
  type Ipv6Extension,
  icmp,
  ipv4,
  ipv6,
  TCP_ACK,
  TCP_SYN,
  tcp,
  udp,
  type VlanTag,
} from '../agent/decode/frames.ts'
import { buildPcap, type PcapRecord } from '../common/pcap/pcap-writer.ts'
import {
  curlGet,
  DNS_A,
  DNS_AAAA,
  dig,
  ping,
  type Servers,
  sendDatagram,
  startDnsServers,
  startHttpServers,
  unusedUdpPort,
  which,
} from './traffic/sources.ts'
import {
  type Summary,
  startTcpdump,
  summarize,
  type TallyReport,
  type TsharkPacket,
  tallySums,
  tsharkPackets,
} from './traffic/tshark.ts'

const run = promisify(execFile)
const ROOT = new URL('../../', import.meta.url).pathname
const TALLY = join(ROOT, 'bin', 'tally.ts')

const missing = ['tcpdump', 'tshark', 'curl', 'dig'].filter((p) => which(p) === undefined)
const isRoot = process.getuid?.() === 0
const skipReason =
  missing.length > 0
    ? `not installed: ${missing.join(', ')} (apt-get install tcpdump tshark curl dnsutils)`
    : !isRoot
      ? 'not root: tcpdump cannot capture and ports 53/80 cannot be bound'
      : undefined
if (skipReason !== undefined)
  console.warn(`SKIPPED: tally vs tshark on real captures: ${skipReason}`)
const tsharkSkip = which('tshark') === undefined ? 'tshark is not installed' : undefined
if (tsharkSkip !== undefined)
  console.warn(`SKIPPED: tally vs tshark on built frames: ${tsharkSkip}`)
const hasPing = which('ping') !== undefined
if (!hasPing && skipReason === undefined) {
  console.warn('WARNING: ping is not installed (apt-get install iputils-ping): no ICMP traffic')
}

const dir = mkdtempSync(join(tmpdir(), 'tally-tshark-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

async function tally(file: string, ...options: string[]): Promise<TallyReport> {
  const { stdout } = await run(
    process.execPath,
    [TALLY, 'agent', 'aggregate', file, '--json', ...options],
    { cwd: ROOT, maxBuffer: 64 * 1024 * 1024, timeout: 60_000 },
  )
  return JSON.parse(stdout) as TallyReport
}

/** The common comparison: totals, by transport, by service, and nothing malformed. */
function expectSame(report: TallyReport, expected: Summary): void {
  expect(report.link_type).toBe(1)
  expect(report.stats.malformed).toEqual({})
  expect(report.stats.packets).toBe(expected.packets)
  expect(report.stats.bytes).toBe(expected.bytes)
  expect(report.stats.non_ip).toBe(expected.nonIp)
  expect(report.stats.decoded).toBe(expected.packets - expected.nonIp)
  const sums = tallySums(report)
  expect(sums.byTransport).toEqual(expected.byTransport)
  expect(sums.byService).toEqual(expected.byService)
  // Tier T traffic holds the same packets and bytes.
  const traffic = report.traffic.reduce(
    (t, r) => ({ packets: t.packets + r.packets, bytes: t.bytes + r.bytes }),
    { packets: 0, bytes: 0 },
  )
  expect(traffic).toEqual({
    packets: expected.packets - expected.nonIp,
    bytes: expected.bytes - expected.nonIpBytes,
  })
}

/** Packets and bytes of the frames that match, straight from tshark's fields. */
function count(packets: readonly TsharkPacket[], match: (p: TsharkPacket) => boolean) {
  const hits = packets.filter(match)
  return { packets: hits.length, bytes: hits.reduce((n, p) => n + p.length, 0) }
}

/** Packets and bytes of tally's rows that match. */
function tallyCount(report: TallyReport, match: (u: TallyReport['usage'][number]) => boolean) {
  const rows = report.usage.filter(match)
  return {
    packets: rows.reduce((n, u) => n + u.packets, 0),
    bytes: rows.reduce((n, u) => n + u.bytes, 0),
  }
}

const hasPort = (p: TsharkPacket, port: number) => p.srcPort === port || p.dstPort === port
const notInTable = (port: number) =>
  !SERVICE_TABLE.some((s) => s.tcp?.includes(port) || s.udp?.includes(port))

describe.skipIf(skipReason !== undefined)('tally vs tshark: real traffic captured on lo', () => {
  const file = join(dir, 'loopback.pcap')
  let http: Servers
  let dns: Servers
  let unknownPort = 0
  const curls = { 4: 0, 6: 0 }
  const digs = { 4: 0, 6: 0 }
  let packets: TsharkPacket[] = []
  let expected: Summary
  let report: TallyReport
  let gateway: TallyReport

  beforeAll(async () => {
    http = await startHttpServers([80, 8080, 8000])
    dns = await startDnsServers([53])
    unknownPort = await unusedUdpPort(notInTable)
    const filter = [
      `tcp port ${http.port}`,
      `udp port ${dns.port}`,
      `udp port ${unknownPort}`,
      'icmp',
      'icmp6',
    ].join(' or ')
    const capture = await startTcpdump('lo', file, filter)
    try {
      // HTTP: one connection per curl, bodies of a few KB up to 300 KB (many segments).
      for (const [address, version] of [
        ['127.0.0.1', 4],
        ['::1', 6],
      ] as const) {
        for (const size of [0, 3000, 8000, 300_000]) {
          expect(await curlGet(address, http.port, size)).toBe(size)
          curls[version]++
        }
      }
      for (let i = 0; i < 3; i++) {
        expect(await dig('127.0.0.1', dns.port, `n${i}.name.example`, 'A')).toBe(DNS_A)
        digs[4]++
        expect(await dig('::1', dns.port, `n${i}.name.example`, 'AAAA')).toBe(DNS_AAAA)
        digs[6]++
      }
      if (hasPing) {
        expect(await ping('127.0.0.1', 3)).toContain('3 received')
        expect(await ping('::1', 3)).toContain('3 received')
      }
      await sendDatagram('127.0.0.1', unknownPort, 100)
      await sendDatagram('::1', unknownPort, 1200)
      // Let the last packets (FINs, ICMP unreachables) reach tcpdump.
      await new Promise((resolve) => setTimeout(resolve, 300))
    } finally {
      await capture.stop()
      await http.close()
      await dns.close()
    }
    ;[packets, report, gateway] = await Promise.all([
      tsharkPackets(file),
      tally(file, '--mode', 'host', '--local-address', '127.0.0.1', '::1'),
      tally(file),
    ])
    expected = summarize(packets)
  })

  it('captured what the programs did', () => {
    expect(http.port).toBeOneOf([80, 8080, 8000])
    expect(dns.port).toBe(53)
    const of = (version: number, transport: string) =>
      count(packets, (p) => p.version === version && p.transport === transport).packets
    expect(of(4, 'tcp')).toBeGreaterThan(4 * 6)
    expect(of(6, 'tcp')).toBeGreaterThan(4 * 6)
    expect(of(4, 'udp')).toBeGreaterThanOrEqual(2 * 3 + 1)
    expect(of(6, 'udp')).toBeGreaterThanOrEqual(2 * 3 + 1)
    if (hasPing) {
      expect(of(4, 'icmp')).toBeGreaterThanOrEqual(6)
      expect(of(6, 'icmpv6')).toBeGreaterThanOrEqual(6)
    }
    // Frames longer than the snaplen: bytes must come from the original length.
    expect(packets.some((p) => p.length > 128)).toBe(true)
  })

  it('totals, transports and services equal tshark’s; nothing is malformed', () => {
    expectSame(report, expected)
    expectSame(gateway, expected)
  })

  it('http (tcp port) and dns (udp port 53) equal tshark’s port counts', () => {
    const httpPackets = count(packets, (p) => p.transport === 'tcp' && hasPort(p, http.port))
    const dnsPackets = count(packets, (p) => p.transport === 'udp' && hasPort(p, dns.port))
    const other = count(packets, (p) => p.transport === 'udp' && hasPort(p, unknownPort))
    expect(httpPackets.packets).toBeGreaterThan(0)
    expect(tallyCount(report, (u) => u.service === 'http')).toEqual(httpPackets)
    expect(tallyCount(report, (u) => u.service === 'dns')).toEqual(dnsPackets)
    expect(tallyCount(report, (u) => u.service === 'other-udp')).toEqual(other)
    expect(other.packets).toBe(2)
    expect(tallyCount(report, (u) => u.service === 'icmp')).toEqual(
      count(packets, (p) => p.transport === 'icmp'),
    )
    expect(tallyCount(report, (u) => u.service === 'icmpv6')).toEqual(
      count(packets, (p) => p.transport === 'icmpv6'),
    )
  })

  it('new flows: one per curl connection, one per dig, one per address pair for ICMP', () => {
    const flows = (version: number, service: string) =>
      report.usage
        .filter((u) => u.ip_version === version && u.service === service)
        .reduce((n, u) => n + u.flows, 0)
    expect(flows(4, 'http')).toBe(curls[4])
    expect(flows(6, 'http')).toBe(curls[6])
    // A source port reused by two digs would make them one flow: rare, and then one fewer.
    expect(flows(4, 'dns')).toBeGreaterThanOrEqual(digs[4] - 1)
    expect(flows(4, 'dns')).toBeLessThanOrEqual(digs[4])
    expect(flows(6, 'dns')).toBeGreaterThanOrEqual(digs[6] - 1)
    expect(flows(6, 'dns')).toBeLessThanOrEqual(digs[6])
    expect(flows(4, 'other-udp')).toBe(1)
    expect(flows(6, 'other-udp')).toBe(1)
    // Echo requests, replies and the port unreachables are all 127.0.0.1 ↔ 127.0.0.1.
    expect(flows(4, 'icmp')).toBe(1)
    expect(flows(6, 'icmpv6')).toBe(1)
  })

  it('loopback is internal and same-site in host mode, transit and same-site in gateway mode', () => {
    for (const u of report.usage) {
      expect([u.direction, u.peer_class]).toEqual(['internal', 'same-site'])
    }
    for (const u of gateway.usage) {
      expect([u.direction, u.peer_class]).toEqual(['transit', 'same-site'])
    }
  })

  it('prints no address and no port outside the service table', async () => {
    const { stdout } = await run(process.execPath, [TALLY, 'agent', 'aggregate', file], {
      cwd: ROOT,
    })
    const json = JSON.stringify(report)
    for (const text of [json, stdout]) {
      expect(text).not.toContain('127.0.0.1')
      expect(text).not.toContain('::1')
      expect(text).not.toContain(String(unknownPort))
    }
  })
})

// ---------------------------------------------------------------------------------------------
// Built frames: VLAN, QinQ, IPv6 extension headers, fragments, ICMP errors, snaplen cuts.

interface Built {
  frame: Uint8Array
  /** Length on the wire when the frame is cut (the record keeps the first 128 bytes). */
  wire?: number
}

function builtFrames(): Built[] {
  const out: Built[] = []
  const vlans: VlanTag[][] = [
    [],
    [{ tpid: ETHERTYPE_VLAN, vid: 10 }],
    [
      { tpid: ETHERTYPE_QINQ, vid: 100 },
      { tpid: ETHERTYPE_VLAN, vid: 20 },
    ],
    [
      { tpid: ETHERTYPE_QINQ_OLD, vid: 200, pcp: 5 },
      { tpid: ETHERTYPE_VLAN, vid: 30 },
    ],
  ]
  const extensionChains: Ipv6Extension[][] = [
    [],
    [{ type: IPV6_HOP_BY_HOP }],
    [{ type: IPV6_HOP_BY_HOP }, { type: IPV6_DESTINATION, length: 16 }],
    [{ type: IPV6_ROUTING, length: 24 }, { type: IPV6_DESTINATION }],
    [{ type: IPV6_AH }],
  ]
  const v4 = (payload: Uint8Array, protocol: number, src: string, dst: string) =>
    ipv4(payload, { protocol, src, dst })
  vlans.forEach((tags, t) => {
    const client4 = `10.1.${t}.5`
    const client6 = `2001:db8:1:${t}::5`
    // A TCP conversation to https, in both directions, with a cut data segment.
    const out4 = tcp({ srcPort: 40000 + t, dstPort: 443, flags: TCP_SYN })
    const back4 = tcp({ srcPort: 443, dstPort: 40000 + t, flags: TCP_SYN | TCP_ACK })
    out.push({ frame: ethernet(ETHERTYPE_IPV4, v4(out4, 6, client4, '93.184.216.34'), tags) })
    out.push({ frame: ethernet(ETHERTYPE_IPV4, v4(back4, 6, '93.184.216.34', client4), tags) })
    const data = tcp({ srcPort: 443, dstPort: 40000 + t, payload: filler(1400) })
    out.push({ frame: ethernet(ETHERTYPE_IPV4, v4(data, 6, '93.184.216.34', client4), tags) })
    // DNS over UDP, and an unknown UDP port with its ICMP port unreachable.
    const query = udp({ srcPort: 50000 + t, dstPort: 53, payload: filler(30) })
    out.push({ frame: ethernet(ETHERTYPE_IPV4, v4(query, 17, client4, '10.1.0.53'), tags) })
    const odd = udp({ srcPort: 50100 + t, dstPort: 47000, payload: filler(20) })
    const oddPacket = v4(odd, 17, client4, '203.0.113.7')
    out.push({ frame: ethernet(ETHERTYPE_IPV4, oddPacket, tags) })
    const unreachable = icmp(3, 3, oddPacket.subarray(0, 28))
    out.push({ frame: ethernet(ETHERTYPE_IPV4, v4(unreachable, 1, '203.0.113.7', client4), tags) })
    // IPv4 fragments: the first carries the UDP header (dns), the next do not.
    const big = udp({ srcPort: 53, dstPort: 50200 + t, payload: filler(1800) })
    const first = big.subarray(0, 1480)
    const second = big.subarray(1480)
    out.push({
      frame: ethernet(
        ETHERTYPE_IPV4,
        ipv4(first, { protocol: 17, src: '10.1.0.53', dst: client4, moreFragments: true }),
        tags,
      ),
    })
    out.push({
      frame: ethernet(
        ETHERTYPE_IPV4,
        ipv4(second, { protocol: 17, src: '10.1.0.53', dst: client4, fragmentOffset: 185 }),
        tags,
      ),
    })
    // Another protocol (GRE) and ARP.
    out.push({ frame: ethernet(ETHERTYPE_IPV4, v4(filler(24), 47, client4, '198.51.100.1'), tags) })
    out.push({ frame: ethernet(ETHERTYPE_ARP, arp(), tags) })
    // IPv6 through each extension chain: TCP, UDP and ICMPv6.
    extensionChains.forEach((extensions, e) => {
      const six = (payload: Uint8Array, protocol: number, src: string, dst: string) =>
        ethernet(ETHERTYPE_IPV6, ipv6(payload, { protocol, src, dst, extensions }), tags)
      const port = 41000 + t * 10 + e
      out.push({ frame: six(tcp({ srcPort: port, dstPort: 22 }), 6, client6, '2001:db8:2::22') })
      out.push({ frame: six(tcp({ srcPort: 22, dstPort: port }), 6, '2001:db8:2::22', client6) })
      const segment = tcp({ srcPort: port, dstPort: 22, payload: filler(1200) })
      out.push({ frame: six(segment, 6, client6, '2001:db8:2::22') })
      out.push({
        frame: six(udp({ srcPort: port, dstPort: 123 }), 17, client6, '2001:db8:2::123'),
      })
      out.push({ frame: six(icmp(128), 58, client6, 'ff02::1') })
      out.push({ frame: six(icmp(129), 58, 'fe80::1', client6) })
    })
    // IPv6 fragments: a first one with the UDP header, then a later one without.
    const frag = (offset: number, more: boolean, payload: Uint8Array) =>
      ethernet(
        ETHERTYPE_IPV6,
        ipv6(payload, {
          protocol: 17,
          src: '2001:db8:2::53',
          dst: client6,
          extensions: [{ type: IPV6_FRAGMENT, fragmentOffset: offset, more }],
        }),
        tags,
      )
    const big6 = udp({ srcPort: 53, dstPort: 50300 + t, payload: filler(1600) })
    out.push({ frame: frag(0, true, big6.subarray(0, 1232)) })
    out.push({ frame: frag(154, false, big6.subarray(1232)) })
  })
  return out
}

describe.skipIf(tsharkSkip !== undefined)('tally vs tshark: VLAN, QinQ, IPv6 extensions', () => {
  it('equal totals, transports, services and flows on a file of built frames', async () => {
    const frames = builtFrames()
    const records: PcapRecord[] = frames.map((b, i) => {
      // Frames over 128 bytes are cut, as tcpdump -s 128 would: the record keeps the length.
      const cut = b.frame.length > 128
      return {
        tsSeconds: 1_700_000_000 + Math.floor(i / 100),
        tsFraction: (i % 100) * 1000,
        data: cut ? b.frame.subarray(0, 128) : b.frame,
        originalLength: b.frame.length,
      }
    })
    expect(records.some((r) => (r.originalLength ?? 0) > 1000)).toBe(true)
    const file = join(dir, 'built.pcap')
    writeFileSync(file, buildPcap(records, { snaplen: 128 }))
    const [packets, report] = await Promise.all([
      tsharkPackets(file),
      tally(file, '--site-prefix', '10.1.0.0/16', '2001:db8:1::/48'),
    ])
    expect(packets).toHaveLength(frames.length)
    const expected = summarize(packets)
    // tshark saw what was built: 4 VLAN layouts, ARP not IP, every transport present.
    expect(expected.nonIp).toBe(4)
    expect(Object.keys(expected.byTransport).sort()).toEqual([
      'icmp',
      'icmpv6',
      'other',
      'tcp',
      'udp',
    ])
    expectSame(report, expected)
    // Spot checks of the definitions: the fragments' later parts have no service.
    expect(expected.byService['v4 udp other-udp']?.packets).toBe(4 + 4)
    expect(expected.byService['v6 udp other-udp']?.packets).toBe(4)
    expect(expected.byService['v6 tcp ssh']?.flows).toBe(4 * 5)
    expect(expected.byService['v4 icmp icmp']).toMatchObject({ packets: 4, flows: 4 })
    const directions = new Set(report.usage.map((u) => `${u.direction} ${u.peer_class}`))
    expect([...directions].sort()).toEqual(
      [
        'inbound internet',
        'inbound same-site',
        'internal same-site',
        'outbound internet',
        'outbound multicast-broadcast',
      ].sort(),
    )
  })
})
