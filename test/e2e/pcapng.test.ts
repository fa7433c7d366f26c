/**
 * pcapng as Wireshark's tools write it, read by `tally agent aggregate` and compared with tshark:
 * - classic pcaps (the benchmark's generated traffic, built raw-IP and Linux cooked files)
 *   converted with `editcap -F pcapng` and back with `editcap -F pcap`: the same report on all
 *   three, and the same counts as tshark;
 * - several link types in one file (`mergecap -F pcapng`), and a live `dumpcap` capture on two
 *   interfaces (Ethernet `lo` and Linux cooked `any`) with its statistics blocks;
 * - the test writer's pcapng files, in both byte orders and several timestamp resolutions, with
 *   the same timestamps as tshark's.
 * Only 127.0.0.1 and ::1 carry live traffic.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { generatePcap } from '../../bench/generate-pcap.ts'
import { PcapngReader } from '../../common/pcap/pcapng.ts'
import {
  arp,
  ETHERTYPE_ARP,
  ETHERTYPE_IPV4,
  ETHERTYPE_IPV6,
  ethernet,
  filler,
  icmp,
  ipv4,
  ipv6,
  sll,
  TCP_SYN,
  tcp,
  udp,
} from '../agent/decode/frames.ts'
import { buildPcap, concatBytes, type PcapRecord } from '../common/pcap/pcap-writer.ts'
import {
  enhancedPacket,
  interfaceDescription,
  interfaceStatistics,
  nameResolution,
  sectionHeader,
  simplePacket,
} from '../common/pcap/pcapng-writer.ts'
import { ping, sendDatagram, unusedUdpPort, which } from './traffic/sources.ts'
import { summarize, type TallyReport, tallySums, tsharkPackets } from './traffic/tshark.ts'

const run = promisify(execFile)
const ROOT = new URL('../../', import.meta.url).pathname
const TALLY = join(ROOT, 'bin', 'tally.ts')

const missing = ['tshark', 'editcap', 'mergecap'].filter((p) => which(p) === undefined)
const skipReason =
  missing.length > 0 ? `not installed: ${missing.join(', ')} (apt-get install tshark)` : undefined
if (skipReason !== undefined) console.warn(`SKIPPED: pcapng vs tshark: ${skipReason}`)
const liveSkip =
  skipReason ??
  (which('dumpcap') === undefined
    ? 'dumpcap is not installed (apt-get install tshark)'
    : process.getuid?.() !== 0
      ? 'not root: dumpcap cannot capture'
      : undefined)
if (liveSkip !== undefined)
  console.warn(`SKIPPED: live dumpcap capture on two interfaces: ${liveSkip}`)

const dir = mkdtempSync(join(tmpdir(), 'tally-pcapng-e2e-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

interface Report extends TallyReport {
  format: 'pcap' | 'pcapng'
  link_types: number[]
  stats: TallyReport['stats'] & {
    truncated_bytes: number
    skipped_blocks: number
    malformed_blocks: number
    seconds: number
    packets_per_second: number
  }
}

async function tally(file: string): Promise<Report> {
  const { stdout } = await run(
    process.execPath,
    // A long idle time: the files span a minute, and every flow is counted once, as tshark's.
    [TALLY, 'agent', 'aggregate', file, '--json', '--flow-idle-seconds', '3600'],
    { cwd: ROOT, maxBuffer: 64 * 1024 * 1024, timeout: 60_000 },
  )
  return JSON.parse(stdout) as Report
}

/** What must not depend on the file format: everything but the timing and the format itself. */
function counts(report: Report) {
  const { seconds: _s, packets_per_second: _p, skipped_blocks: _k, ...stats } = report.stats
  return { link_type: report.link_type, stats, usage: report.usage, traffic: report.traffic }
}

/** Tally's report equals tshark's reading of the same file: totals, transports, services. */
async function expectSameAsTshark(file: string, report: Report): Promise<void> {
  const expected = summarize(await tsharkPackets(file))
  expect(expected.packets).toBeGreaterThan(0)
  expect(report.stats.malformed).toEqual({})
  expect(report.stats.malformed_blocks).toBe(0)
  expect(report.stats.truncated_bytes).toBe(0)
  expect(report.stats.packets).toBe(expected.packets)
  expect(report.stats.bytes).toBe(expected.bytes)
  expect(report.stats.non_ip).toBe(expected.nonIp)
  const sums = tallySums(report)
  expect(sums.byTransport).toEqual(expected.byTransport)
  expect(sums.byService).toEqual(expected.byService)
}

async function editcap(format: 'pcap' | 'pcapng', from: string, to: string): Promise<void> {
  await run('editcap', ['-F', format, from, to], { timeout: 60_000 })
}

/** Raw IPv4/IPv6 packets (LINKTYPE_RAW), nanosecond timestamps. */
function rawIpRecords(): PcapRecord[] {
  const packets: Uint8Array[] = []
  for (let i = 0; i < 40; i++) {
    const src = `192.0.2.${1 + (i % 5)}`
    packets.push(
      ipv4(tcp({ srcPort: 41000 + i, dstPort: 443, flags: TCP_SYN }), {
        protocol: 6,
        src,
        dst: '198.51.100.7',
      }),
    )
    packets.push(
      ipv4(udp({ srcPort: 5353, dstPort: 53, payload: filler(40 + i) }), {
        protocol: 17,
        src,
        dst: '198.51.100.53',
      }),
    )
    packets.push(
      ipv6(udp({ srcPort: 42000 + i, dstPort: 123 }), {
        protocol: 17,
        src: '2001:db8:5::1',
        dst: '2001:db8:6::123',
      }),
    )
    packets.push(ipv6(icmp(128), { protocol: 58, src: '2001:db8:5::1', dst: '2001:db8:6::2' }))
  }
  return packets.map((data, i) => ({
    tsSeconds: 1_700_000_000 + Math.floor(i / 3),
    tsFraction: (i * 7_654_321) % 1_000_000_000,
    data,
  }))
}

/** Linux cooked (v1) frames: IPv4, IPv6 and ARP, microsecond timestamps. */
function cookedRecords(): PcapRecord[] {
  const frames: Uint8Array[] = []
  for (let i = 0; i < 30; i++) {
    frames.push(
      sll(
        ETHERTYPE_IPV4,
        ipv4(tcp({ srcPort: 22, dstPort: 50000 + i, payload: filler(i * 20) }), {
          protocol: 6,
          src: '203.0.113.22',
          dst: `203.0.113.${100 + (i % 3)}`,
        }),
      ),
    )
    frames.push(
      sll(
        ETHERTYPE_IPV6,
        ipv6(tcp({ srcPort: 51000 + i, dstPort: 80 }), {
          protocol: 6,
          src: '2001:db8:7::1',
          dst: '2001:db8:8::80',
        }),
      ),
    )
    if (i % 10 === 0) frames.push(sll(ETHERTYPE_ARP, arp()))
  }
  return frames.map((data, i) => ({
    tsSeconds: 1_700_000_000 + Math.floor(i / 2),
    tsFraction: (i * 12_345) % 1_000_000,
    data,
  }))
}

describe.skipIf(skipReason !== undefined)('pcapng vs pcap vs tshark (editcap, mergecap)', () => {
  const files = {
    ethernet: join(dir, 'generated.pcap'),
    raw: join(dir, 'raw-ip.pcap'),
    cooked: join(dir, 'cooked.pcap'),
  }

  beforeAll(async () => {
    // The benchmark's traffic (VLAN, QinQ, IPv6, ARP, cut frames): 10,000 packets over a minute.
    generatePcap({ packets: 10_000, out: files.ethernet })
    writeFileSync(files.raw, buildPcap(rawIpRecords(), { linkType: 101, nanosecond: true }))
    writeFileSync(files.cooked, buildPcap(cookedRecords(), { linkType: 113, bigEndian: true }))
  })

  for (const [name, linkType] of [
    ['ethernet', 1],
    ['raw', 101],
    ['cooked', 113],
  ] as const) {
    it(`${name}: the same report on the pcap, its pcapng and the pcap back, and as tshark`, async () => {
      const pcap = files[name]
      const pcapng = pcap.replace(/\.pcap$/, '.pcapng')
      const back = pcap.replace(/\.pcap$/, '.back.pcap')
      await editcap('pcapng', pcap, pcapng)
      await editcap('pcap', pcapng, back)
      const [fromPcap, fromPcapng, fromBack] = await Promise.all([
        tally(pcap),
        tally(pcapng),
        tally(back),
      ])
      expect(fromPcap.format).toBe('pcap')
      expect(fromPcapng.format).toBe('pcapng')
      expect(fromPcapng.link_types).toEqual([linkType])
      expect(fromPcapng.link_type).toBe(linkType)
      expect(counts(fromPcapng)).toEqual(counts(fromPcap))
      expect(counts(fromBack)).toEqual(counts(fromPcap))
      await expectSameAsTshark(pcapng, fromPcapng)
    })
  }

  it('several interfaces with different link types in one file (mergecap -F pcapng)', async () => {
    const merged = join(dir, 'merged.pcapng')
    // Chronological merge: the three files overlap in time, so interfaces alternate.
    await run('mergecap', ['-F', 'pcapng', '-w', merged, files.ethernet, files.raw, files.cooked])
    const { stdout } = await run('tshark', [
      '-r',
      merged,
      '-T',
      'fields',
      '-e',
      'frame.interface_id',
    ])
    const ids = stdout.trim().split('\n')
    const switches = ids.filter((id, i) => i > 0 && id !== ids[i - 1]).length
    expect(new Set(ids)).toEqual(new Set(['0', '1', '2']))
    expect(switches).toBeGreaterThan(50)
    const [report, ...parts] = await Promise.all([
      tally(merged),
      tally(files.ethernet),
      tally(files.raw),
      tally(files.cooked),
    ])
    expect(report.format).toBe('pcapng')
    expect(report.link_types).toEqual([1, 101, 113])
    await expectSameAsTshark(merged, report)
    // Nothing is shared between the three: the merged counts are the sums of the parts'.
    expect(report.stats.packets).toBe(parts.reduce((n, p) => n + p.stats.packets, 0))
    expect(report.stats.decoded).toBe(parts.reduce((n, p) => n + p.stats.decoded, 0))
  })
})

// ---------------------------------------------------------------------------------------------
// A live capture by dumpcap on two interfaces.

interface Dumpcap {
  child: ChildProcess
  exited: Promise<number | null>
  /** Packets written so far, from dumpcap's own "Packets: N" progress on stderr. */
  written: () => number
}

async function startDumpcap(file: string, filter: string): Promise<Dumpcap> {
  // Its own process group, so that a failed test can take the whole of it down.
  const child = spawn(
    'dumpcap',
    ['-i', 'lo', '-f', filter, '-i', 'any', '-f', filter, '-w', file],
    { stdio: ['ignore', 'ignore', 'pipe'], detached: true },
  )
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => resolve(code)),
  )
  let stderr = ''
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`dumpcap did not start: ${stderr}`)), 20_000)
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk
      if (stderr.includes('Capturing on')) {
        clearTimeout(timer)
        resolve()
      }
    })
    void exited.then((code) => {
      clearTimeout(timer)
      reject(new Error(`dumpcap exited (${code}) before capturing: ${stderr}`))
    })
  })
  const written = () => {
    const counts = [...stderr.matchAll(/Packets: (\d+)/g)].map((m) => Number(m[1]))
    return counts.at(-1) ?? 0
  }
  return { child, exited, written }
}

function stopGroup(child: ChildProcess): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return
  try {
    process.kill(-child.pid, 'SIGTERM')
  } catch {
    // already gone
  }
}

describe.skipIf(liveSkip !== undefined)('pcapng from a live dumpcap on lo and any', () => {
  let capture: Dumpcap | undefined
  afterAll(() => {
    if (capture !== undefined) stopGroup(capture.child)
  })

  it('reads both interfaces (Ethernet and Linux cooked) and skips the statistics blocks, as tshark', async () => {
    const file = join(dir, 'dumpcap.pcapng')
    const port = await unusedUdpPort(() => true)
    capture = await startDumpcap(file, `udp port ${port} or icmp or icmp6`)
    try {
      for (const address of ['127.0.0.1', '::1']) {
        for (const size of [10, 300, 1200]) await sendDatagram(address, port, size)
      }
      if (which('ping') !== undefined) {
        await ping('127.0.0.1', 2)
        await ping('::1', 2)
      }
      // Each datagram and its ICMP unreachable on both interfaces: wait until dumpcap wrote at
      // least the datagrams, then a little for the rest (the comparison is on the file anyway).
      const deadline = Date.now() + 20_000
      while (capture.written() < 12 && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 50))
      }
      await new Promise((resolve) => setTimeout(resolve, 300))
    } finally {
      stopGroup(capture.child)
      await capture.exited
    }
    const report = await tally(file)
    expect(report.format).toBe('pcapng')
    // lo is Ethernet; "any" is Linux cooked, v1 or v2 depending on the libpcap.
    expect(report.link_types[0]).toBe(1)
    expect([113, 276]).toContain(report.link_types[1])
    // dumpcap ends with one interface statistics block per interface.
    expect(report.stats.skipped_blocks).toBeGreaterThanOrEqual(2)
    // Every datagram on both interfaces: 6 on lo and 6 on any, plus what ICMP added.
    expect(report.stats.packets).toBeGreaterThanOrEqual(12)
    await expectSameAsTshark(file, report)
  })
})

// ---------------------------------------------------------------------------------------------
// The test writer's files, read by tshark: both byte orders, several resolutions.

describe.skipIf(skipReason !== undefined)('pcapng timestamps: reader vs tshark', () => {
  it('the same timestamps and lengths as tshark, both byte orders, several resolutions', async () => {
    // tshark 4.0 overflows on resolutions finer than 2^-32 s, so those are left to the unit
    // tests' BigInt reference.
    const resolutions: (number | undefined)[] = [
      undefined,
      9,
      3,
      0,
      7,
      0x80 | 10,
      0x80 | 30,
      0x80 | 32,
    ]
    const data = ethernet(
      ETHERTYPE_IPV4,
      ipv4(udp({ srcPort: 40000, dstPort: 53, payload: filler(30) }), {
        protocol: 17,
        src: '192.0.2.1',
        dst: '192.0.2.2',
      }),
    )
    for (const bigEndian of [false, true]) {
      const o = { bigEndian }
      const parts = [sectionHeader(o), nameResolution(o)]
      for (const tsresol of resolutions)
        parts.push(interfaceDescription({ ...o, linkType: 1, tsresol }))
      resolutions.forEach((tsresol, id) => {
        for (let k = 0; k < 4; k++) {
          // Around 1.7e9 s in the interface's units, with a fraction that uses every digit.
          const r = tsresol ?? 6
          const units = r & 0x80 ? 1n << BigInt(r & 0x7f) : 10n ** BigInt(r)
          const timestamp = (1_700_000_000n + BigInt(k)) * units + (units * BigInt(k * 2 + 1)) / 9n
          parts.push(enhancedPacket({ ...o, interfaceId: id, timestamp, data }))
        }
      })
      parts.push(simplePacket({ ...o, data }))
      parts.push(interfaceStatistics(0, o))
      const file = join(dir, `written-${bigEndian ? 'be' : 'le'}.pcapng`)
      const bytes = concatBytes(parts)
      writeFileSync(file, bytes)

      const ours: string[] = []
      let nanosecond = false
      const reader = new PcapngReader(
        (_d, _o, captured, original, seconds, fraction) => {
          const digits = nanosecond
            ? String(fraction).padStart(9, '0')
            : `${String(fraction).padStart(6, '0')}000`
          ours.push(`${seconds}.${digits} ${original} ${captured}`)
        },
        (h) => {
          nanosecond = h.nanosecond
        },
      )
      reader.push(bytes)
      expect(reader.end()).toEqual({ truncatedBytes: 0 })

      const { stdout } = await run('tshark', [
        '-r',
        file,
        '-T',
        'fields',
        '-e',
        'frame.time_epoch',
        '-e',
        'frame.len',
        '-e',
        'frame.cap_len',
      ])
      const theirs = stdout.trim().split('\n')
      // The simple packet block has no timestamp: tshark prints none, the reader gives 0.
      expect(theirs.at(-1)).toBe(`\t${data.length}\t${data.length}`)
      expect(ours.at(-1)).toBe(`0.000000000 ${data.length} ${data.length}`)
      expect(ours.slice(0, -1)).toEqual(theirs.slice(0, -1).map((l) => l.replaceAll('\t', ' ')))
      expect(ours).toHaveLength(resolutions.length * 4 + 1)
    }
  })
})
