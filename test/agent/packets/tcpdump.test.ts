import { execFileSync } from 'node:child_process'
import { createSocket } from 'node:dgram'
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import {
  type CaptureEvent,
  LiveCapture,
  type LiveCaptureOptions,
  parseStatsLine,
  unavailableReason,
} from '../../../agent/packets/tcpdump.ts'
import type { PcapHeader } from '../../../common/pcap/pcap-reader.ts'
import { buildPcap, type PcapRecord, udpFrame } from '../../common/pcap/pcap-writer.ts'

const dir = mkdtempSync(join(tmpdir(), 'tally-tcpdump-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

const records: PcapRecord[] = [0, 1, 2, 3, 4].map((i) => ({
  tsSeconds: 1_700_000_000 + i,
  tsFraction: 1000 * i,
  data: udpFrame(50_000 + i, 9999, new Uint8Array(20 + i)),
}))
const pcapPath = join(dir, 'input.pcap')
/** Where each fake tcpdump writes its pid, which is also its process group's id. */
const groupsFile = join(dir, 'groups')
writeFileSync(pcapPath, buildPcap(records, { snaplen: 128 }))

let scriptCount = 0
/**
 * Writes a fake tcpdump: records its arguments, installs the signal handlers first (as tcpdump
 * does), announces "listening on" on stderr, writes the pcap file to stdout, then either exits
 * with `exitCode` (printing its final counters, as tcpdump does at exit) or waits for SIGTERM.
 * SIGUSR1 prints the counters in tcpdump's one-line format.
 *
 * It makes itself the leader of a process group of its own (setsid, which keeps the pid when the
 * caller is not a group leader), so that the test can kill it and the sleeper it waits on in one
 * go, whatever state a failed test left it in.
 */
function fakeTcpdump(opts: {
  exitCode?: number
  stderrOnly?: string
  counters?: string
  pcap?: string
}) {
  const path = join(dir, `fake-tcpdump-${scriptCount++}.sh`)
  const argsFile = `${path}.args`
  const [captured, received, kernel, iface] = (opts.counters ?? '5 7 1 2').split(' ')
  const body = opts.stderrOnly
    ? `printf '%s\\n' ${shellQuote(opts.stderrOnly)} >&2\nexit ${opts.exitCode ?? 1}\n`
    : `
final() {
  printf '%s packets captured\\n%s packets received by filter\\n%s packet dropped by kernel\\n%s packets dropped by interface\\n' ${captured} ${received} ${kernel} ${iface} >&2
}
trap 'printf "tcpdump: %s packets captured, %s packets received by filter, %s packet dropped by kernel, %s packets dropped by interface\\n" ${captured} ${received} ${kernel} ${iface} >&2' USR1
trap 'kill $SLEEPER 2>/dev/null; final; exit 0' TERM
printf 'tcpdump: listening on lo, link-type EN10MB (Ethernet), snapshot length 128 bytes\\n' >&2
cat ${shellQuote(opts.pcap ?? pcapPath)}
${
  opts.exitCode !== undefined
    ? `final; exit ${opts.exitCode}`
    : // One sleeper: a signal (SIGUSR1) ends the wait, not the sleeper, so wait on it again.
      `sleep 3600 </dev/null >/dev/null 2>&1 & SLEEPER=$!\nwhile kill -0 $SLEEPER 2>/dev/null; do wait $SLEEPER; done`
}
`
  const ownGroup = `[ "$TALLY_FAKE_TCPDUMP_GROUP" = 1 ] || TALLY_FAKE_TCPDUMP_GROUP=1 exec setsid "$0" "$@"
echo $$ >> ${shellQuote(groupsFile)}`
  writeFileSync(
    path,
    `#!/bin/sh\n${ownGroup}\nprintf '%s\\n' "$@" > ${shellQuote(argsFile)}\n${body}`,
  )
  chmodSync(path, 0o755)
  return { path, argsFile }
}

function shellQuote(s: string): string {
  return `'${s.replaceAll("'", `'\\''`)}'`
}

interface Harness {
  capture: LiveCapture
  events: CaptureEvent[]
  packets: Array<{ caplen: number; len: number; sec: number; frac: number; firstByte: number }>
  headers: PcapHeader[]
  waitFor: (predicate: () => boolean, what: string, ms?: number) => Promise<void>
}

/** What LiveCapture always runs tcpdump with, before any filter: snaplen 128, unbuffered, to stdout. */
const tcpdumpArgs = (iface: string) => [
  '-i',
  iface,
  '-s',
  '128',
  '-U',
  '-n',
  '--immediate-mode',
  '-w',
  '-',
]

const live: LiveCapture[] = []
afterEach(async () => {
  try {
    await Promise.all(live.splice(0).map((c) => c.stop()))
  } finally {
    // Whatever a test left, each fake and its sleeper go with their group.
    const groups = existsSync(groupsFile) ? readFileSync(groupsFile, 'utf8') : ''
    for (const group of groups.split('\n').filter((g) => /^\d+$/.test(g))) {
      try {
        process.kill(-Number(group), 'SIGKILL')
      } catch {
        // the group has ended
      }
    }
    rmSync(groupsFile, { force: true })
  }
})

function harness(options: Partial<LiveCaptureOptions> & { interface?: string }): Harness {
  const events: CaptureEvent[] = []
  const packets: Harness['packets'] = []
  const headers: PcapHeader[] = []
  const capture = new LiveCapture({
    interface: 'lo',
    onPacket: (data, offset, caplen, len, sec, frac) => {
      packets.push({ caplen, len, sec, frac, firstByte: data[offset] ?? -1 })
    },
    onHeader: (h) => headers.push(h),
    onEvent: (e) => events.push(e),
    restartBaseMs: 50,
    restartMaxMs: 300,
    ...options,
  })
  live.push(capture)
  const waitFor = async (predicate: () => boolean, what: string, ms = 20_000) => {
    const deadline = Date.now() + ms
    while (!predicate()) {
      if (Date.now() > deadline) {
        throw new Error(`timed out waiting for ${what}; events: ${JSON.stringify(events)}`)
      }
      await new Promise((r) => setTimeout(r, 10))
    }
  }
  return { capture, events, packets, headers, waitFor }
}

describe('LiveCapture with a fake tcpdump', () => {
  it('spawns tcpdump with headers-only arguments, delivers packets and parses stats', async () => {
    const fake = fakeTcpdump({})
    const h = harness({ tcpdumpPath: fake.path, filter: 'udp or tcp' })
    expect(h.capture.running).toBe(false)
    h.capture.start()
    await h.waitFor(() => h.packets.length === records.length, 'all packets')
    expect(h.capture.running).toBe(true)
    const started = h.events.find((e) => e.kind === 'started')
    expect(started?.kind === 'started' && started.pid > 0).toBe(true)
    expect(readFileSync(fake.argsFile, 'utf8').trim().split('\n')).toEqual([
      ...tcpdumpArgs('lo'),
      '--',
      'udp or tcp',
    ])
    expect(h.headers).toHaveLength(1)
    expect(h.headers[0]?.snaplen).toBe(128)
    expect(h.packets.map((p) => [p.caplen, p.len, p.sec, p.frac])).toEqual(
      records.map((r) => [r.data.length, r.data.length, r.tsSeconds, r.tsFraction]),
    )

    const stats = await h.capture.stats()
    expect(stats).toEqual({ received: 7, droppedByKernel: 1, droppedByInterface: 2, packets: 5 })
    const [a, b] = await Promise.all([h.capture.stats(), h.capture.stats()])
    expect(a).toEqual(stats)
    expect(b).toEqual(stats)

    await h.capture.stop()
    expect(h.capture.running).toBe(false)
    const exited = h.events.find((e) => e.kind === 'exited')
    expect(exited).toMatchObject({ kind: 'exited', code: 0, restartInMs: -1 })
    expect(await h.capture.stats()).toEqual(stats)
    expect(h.events.some((e) => e.kind === 'unavailable')).toBe(false)
  })

  it('restarts after tcpdump exits with an error, with a fresh reader and cumulative stats', async () => {
    const fake = fakeTcpdump({ exitCode: 3, counters: '5 10 2 0' })
    const h = harness({ tcpdumpPath: fake.path })
    h.capture.start()
    await h.waitFor(() => h.events.filter((e) => e.kind === 'exited').length >= 3, 'three exits')
    await h.capture.stop()
    const exits = h.events.filter((e) => e.kind === 'exited')
    // Backoff doubles from the base and is capped at the maximum.
    expect(exits.slice(0, 3).map((e) => e.kind === 'exited' && e.restartInMs)).toEqual([
      50, 100, 200,
    ])
    expect(exits[0]).toMatchObject({ code: 3, signal: null })
    const runs = h.headers.length
    expect(runs).toBeGreaterThanOrEqual(3)
    expect(h.events.filter((e) => e.kind === 'started').length).toBe(runs)
    expect(h.packets).toHaveLength(runs * records.length)
    const stats = await h.capture.stats()
    expect(stats).toEqual({
      received: 10 * runs,
      droppedByKernel: 2 * runs,
      droppedByInterface: 0,
      packets: runs * records.length,
    })
    expect(h.events.some((e) => e.kind === 'unavailable')).toBe(false)
  })

  it('reports a missing tcpdump as unavailable, keeps retrying and never throws', async () => {
    const h = harness({ tcpdumpPath: join(dir, 'no-such-tcpdump'), restartMaxMs: 100 })
    h.capture.start()
    await h.waitFor(
      () => h.events.filter((e) => e.kind === 'unavailable').length >= 2,
      'two unavailable events',
    )
    const [event] = h.events
    expect(event).toEqual({
      kind: 'unavailable',
      reason: `tcpdump was not found at ${join(dir, 'no-such-tcpdump')}: install it with apt-get install tcpdump or correct the configured tcpdump path`,
    })
    expect(h.capture.running).toBe(false)
    expect(await h.capture.stats()).toEqual({
      received: 0,
      droppedByKernel: 0,
      droppedByInterface: 0,
      packets: 0,
    })
  })

  it('says "not installed" when tcpdump is not on PATH', async () => {
    const h = harness({})
    const path = process.env.PATH
    process.env.PATH = join(dir, 'empty-path')
    try {
      h.capture.start()
    } finally {
      process.env.PATH = path
    }
    await h.waitFor(() => h.events.some((e) => e.kind === 'unavailable'), 'unavailable')
    expect(h.events[0]).toEqual({
      kind: 'unavailable',
      reason:
        'tcpdump is not installed (not found on PATH): install it with apt-get install tcpdump',
    })
  })

  it('reports missing capture permission as unavailable and retries slowly', async () => {
    const fake = fakeTcpdump({
      stderrOnly: "tcpdump: eth0: You don't have permission to capture on that device",
      exitCode: 1,
    })
    const h = harness({ tcpdumpPath: fake.path, interface: 'eth0', restartMaxMs: 150 })
    h.capture.start()
    await h.waitFor(
      () => h.events.filter((e) => e.kind === 'unavailable').length >= 2,
      'two unavailable events',
    )
    expect(h.events[0]).toEqual({
      kind: 'exited',
      code: 1,
      signal: null,
      stderr: "tcpdump: eth0: You don't have permission to capture on that device",
      restartInMs: 150,
    })
    expect(h.events[1]).toEqual({
      kind: 'unavailable',
      reason:
        'tcpdump lacks permission to capture on eth0: run the agent as root or give tcpdump ' +
        'CAP_NET_RAW (setcap cap_net_raw,cap_net_admin=eip $(command -v tcpdump))',
    })
    expect(h.events.some((e) => e.kind === 'started')).toBe(false)
  })

  it('kills and restarts tcpdump when its output is not classic pcap', async () => {
    const pcapng = join(dir, 'output.pcapng')
    writeFileSync(pcapng, Uint8Array.from([0x0a, 0x0d, 0x0d, 0x0a, ...new Array(60).fill(0)]))
    const fake = fakeTcpdump({ pcap: pcapng })
    const h = harness({ tcpdumpPath: fake.path })
    h.capture.start()
    await h.waitFor(() => h.events.filter((e) => e.kind === 'started').length >= 2, 'a restart')
    const exited = h.events.find((e) => e.kind === 'exited')
    expect(exited).toMatchObject({ kind: 'exited', code: 0, restartInMs: 50 })
    expect(exited?.kind === 'exited' && exited.stderr).toMatch(
      /tally: stopped tcpdump: pcapng is not supported/,
    )
    expect(h.packets).toHaveLength(0)
  })

  it('rejects a snaplen outside 1..262144 and an option-like interface name', () => {
    const onPacket = () => {}
    expect(() => new LiveCapture({ interface: 'lo', snaplen: 0, onPacket })).toThrow(RangeError)
    expect(() => new LiveCapture({ interface: '-w/tmp/x', onPacket })).toThrow(RangeError)
    expect(new LiveCapture({ interface: 'eth0', onPacket }).args).toEqual(tcpdumpArgs('eth0'))
  })
})

describe('tcpdump output parsing', () => {
  it('parses the SIGUSR1 line and the exit lines, singular and plural', () => {
    expect(
      parseStatsLine(
        'tcpdump: 1 packet captured, 6 packets received by filter, 0 packets dropped by kernel',
      ),
    ).toEqual({ captured: 1, received: 6, droppedByKernel: 0 })
    expect(parseStatsLine('3 packets dropped by interface')).toEqual({ droppedByInterface: 3 })
    expect(parseStatsLine('tcpdump: listening on lo, link-type EN10MB (Ethernet)')).toBeUndefined()
  })

  it('explains an unknown interface and a bad filter', () => {
    expect(unavailableReason('tcpdump: eth9: No such device exists\n', 'eth9', undefined)).toMatch(
      /^capture interface eth9 does not exist on this host/,
    )
    expect(
      unavailableReason("tcpdump: can't parse filter expression: syntax error\n", 'lo', 'udp and'),
    ).toBe(
      'the capture filter "udp and" is not valid BPF: tcpdump: can\'t parse filter expression: syntax error',
    )
    expect(
      unavailableReason('tcpdump: pcap_loop: something odd\n', 'lo', undefined),
    ).toBeUndefined()
  })
})

function which(program: string): string | undefined {
  try {
    return execFileSync('which', [program], { encoding: 'utf8' }).trim() || undefined
  } catch {
    return undefined
  }
}

const realTcpdump = which('tcpdump')
const isRoot = process.getuid?.() === 0
const realSkipReason =
  realTcpdump === undefined
    ? 'tcpdump is not installed (apt-get install -y tcpdump)'
    : !isRoot
      ? 'the tests are not running as root, so tcpdump cannot capture on lo'
      : undefined
if (realSkipReason !== undefined) {
  console.warn(`SKIPPED: real tcpdump capture on lo: ${realSkipReason}`)
}

describe('LiveCapture with the real tcpdump', () => {
  it.skipIf(realSkipReason !== undefined)(
    'captures UDP datagrams on lo, headers only, and reports stats (needs tcpdump and root)',
    async () => {
      const receiver = createSocket('udp4')
      await new Promise<void>((resolve) => receiver.bind(0, '127.0.0.1', resolve))
      const port = receiver.address().port
      const h = harness({ filter: `udp and dst port ${port}`, restartBaseMs: 1000 })
      h.capture.start()
      await h.waitFor(() => h.events.some((e) => e.kind === 'started'), 'tcpdump listening')
      const sender = createSocket('udp4')
      const payload = new Uint8Array(600).fill(0x41)
      const count = 5
      for (let i = 0; i < count; i++) {
        await new Promise<void>((resolve, reject) =>
          sender.send(payload, port, '127.0.0.1', (e) => (e ? reject(e) : resolve())),
        )
      }
      sender.close()
      await h.waitFor(() => h.packets.length >= count, `${count} packets`)
      receiver.close()
      expect(h.headers[0]).toMatchObject({ linkType: 1, snaplen: 128 })
      for (const p of h.packets) {
        expect(p.caplen).toBe(128) // headers only: the 600-byte payload never arrives whole
        expect(p.len).toBe(14 + 20 + 8 + 600)
      }
      const stats = await h.capture.stats()
      expect(stats.received).toBeGreaterThanOrEqual(count)
      expect(stats.packets).toBe(h.packets.length)
      await h.capture.stop()
      const final = await h.capture.stats()
      expect(final.received).toBeGreaterThanOrEqual(stats.received)
      expect(h.events.filter((e) => e.kind === 'exited')).toHaveLength(1)
      expect(h.events.some((e) => e.kind === 'unavailable')).toBe(false)
    },
  )
})
