/**
 * Benchmark: packets per second and peak memory of `tally agent aggregate` on large generated
 * captures, beside nfpcapd (nfdump) and softflowd on the same files in the same run, plus a naive
 * JavaScript loop for reference.
 *
 *   npm run bench                          # 1,000,000 packets, snaplen 128 and full frames
 *   node bench/aggregate.ts --frames full --runs 5
 *   node bench/aggregate.ts --file capture.pcap [--file other.pcap]
 *
 * Options: --file FILE (repeatable; else files are generated, once, into --tmp), --frames
 * snap|full|both (which generated files: snaplen 128, every frame whole, or both; default both),
 * --packets N, --runs N, --tmp DIR (default $TMPDIR/tally-bench), --cpu N (the core for
 * taskset), --rss auto|poll.
 *
 * Every tool runs as its own process, pinned to one core with `taskset -c 0` when available,
 * `--runs` times (default 3), the tools and files taking turns within each round. The figure
 * that counts is the wall clock of the whole process, startup included, from spawn to exit; peak
 * RSS comes from GNU time (`/usr/bin/time -v`), or else from polling VmHWM in /proc/PID/status.
 * Tally's own in-process figure (read + decode + aggregate, startup excluded) is printed beside
 * it, and its fixed cost: the same command on a capture without packets. The bundled agent
 * (dist/tally-agent.mjs, `npm run build:agent`) is measured too when it has been built. Figures
 * are printed, never asserted.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { createSocket } from 'node:dgram'
import {
  accessSync,
  closeSync,
  constants,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs'
import { cpus, loadavg, release, tmpdir } from 'node:os'
import { basename, delimiter, dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import {
  DEFAULT_PACKETS,
  DEFAULT_SEED,
  DEFAULT_SNAPLEN,
  FULL_FRAME_SNAPLEN,
  GENERATOR_VERSION,
  generatePcap,
} from './generate-pcap.ts'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..')
/** Issue 10's target for the whole process on one core (the traffic issue's was 1.5 Mpps). */
const TARGET_PPS = 2_000_000
const BUNDLE = join(ROOT, 'dist/tally-agent.mjs')
/** The generated traffic's site: gives tally's direction and peer-class code real work. */
const SITE_PREFIXES = ['10.20.0.0/16', '2001:db8:20::/48']

interface RunResult {
  wallSeconds: number
  /** Peak resident set size in bytes, when known. */
  peakRss: number | undefined
  /** User + system CPU seconds, when GNU time measured them. */
  cpuSeconds: number | undefined
  exitCode: number | null
  stdout: string
  stderrTail: string
  /** Figures the tool reported about itself. */
  reported: Record<string, number>
  notes: string[]
}

interface ToolSpec {
  name: string
  /** Debian package that provides it, for the "not installed" message. */
  aptPackage?: string
  /** Absolute path of the executable, or undefined when it is missing. */
  executable: string | undefined
  args: (file: string, run: RunContext) => string[]
  /** Reads the tool's own figures from its output. */
  parse: (result: RunResult, context: RunContext) => void
  setup?: (context: RunContext) => Promise<void> | void
  teardown?: (context: RunContext) => Promise<void> | void
}

interface RunContext {
  dir: string
  udpPort: number
  datagrams: number
}

/** A figure is undefined when the run could not measure it (JSON drops it). */
interface ToolSummary {
  tool: string
  status: 'ok' | 'not installed' | 'failed'
  aptPackage?: string | undefined
  command?: string
  packets: number
  runs: number[]
  bestWallSeconds?: number | undefined
  medianWallSeconds?: number | undefined
  mppsBestWall?: number | undefined
  mppsMedianWall?: number | undefined
  peakRssMiB?: number | undefined
  cpuSecondsBestRun?: number | undefined
  /** User + system CPU seconds, median over the runs (GNU time only). */
  cpuSecondsMedian?: number | undefined
  /** Packets / median CPU seconds: what one core does when it is not shared. */
  mppsPerCpuSecond?: number | undefined
  inProcessMppsBest?: number | undefined
  inProcessMppsMedian?: number | undefined
  reported?: Record<string, number> | undefined
  notes: string[]
  error?: string | undefined
}

function findExecutable(name: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/sbin', '/usr/bin']
  for (const dir of dirs) {
    if (dir === '') continue
    const candidate = join(dir, name)
    try {
      accessSync(candidate, constants.X_OK)
      return candidate
    } catch {}
  }
  return undefined
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1
    ? (sorted[mid] ?? 0)
    : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2
}

/** Parses `/usr/bin/time -v` output. */
function parseGnuTime(text: string): {
  peakRss: number | undefined
  cpuSeconds: number | undefined
} {
  const rss = /Maximum resident set size \(kbytes\): (\d+)/.exec(text)
  const user = /User time \(seconds\): ([\d.]+)/.exec(text)
  const system = /System time \(seconds\): ([\d.]+)/.exec(text)
  return {
    peakRss: rss ? Number(rss[1]) * 1024 : undefined,
    cpuSeconds: user && system ? Number(user[1]) + Number(system[1]) : undefined,
  }
}

function readVmHwm(pid: number): number | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8')
    const match = /VmHWM:\s+(\d+) kB/.exec(status)
    return match ? Number(match[1]) * 1024 : undefined
  } catch {
    return undefined
  }
}

/** Keeps the last `limit` characters of a stream (nfpcapd prints a line per skipped frame). */
function tailCollector(limit: number): { push: (s: string) => void; text: () => string } {
  let text = ''
  return {
    push: (s) => {
      text += s
      if (text.length > 2 * limit) text = text.slice(-limit)
    },
    text: () => text.slice(-limit),
  }
}

interface Launcher {
  pin: string[] | undefined
  gnuTime: string | undefined
}

async function runOnce(
  launcher: Launcher,
  executable: string,
  args: string[],
  dir: string,
): Promise<RunResult> {
  const timeFile = join(dir, 'time.txt')
  rmSync(timeFile, { force: true })
  const argv: string[] = [...(launcher.pin ?? [])]
  if (launcher.gnuTime !== undefined) argv.push(launcher.gnuTime, '-v', '-o', timeFile)
  argv.push(executable, ...args)
  const [command = executable, ...rest] = argv
  const stdout: string[] = []
  const stderr = tailCollector(64 * 1024)
  let polledRss: number | undefined
  const started = process.hrtime.bigint()
  const child: ChildProcess = spawn(command, rest, {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  child.stdout?.setEncoding('utf8').on('data', (s: string) => stdout.push(s))
  child.stderr?.setEncoding('utf8').on('data', (s: string) => stderr.push(s))
  let poll: NodeJS.Timeout | undefined
  if (launcher.gnuTime === undefined && child.pid !== undefined) {
    // taskset execs the command in the same process, so the pid is the tool's.
    const pid = child.pid
    poll = setInterval(() => {
      const hwm = readVmHwm(pid)
      if (hwm !== undefined) polledRss = Math.max(polledRss ?? 0, hwm)
    }, 5)
  }
  // The clock stops when the process exits; 'close' comes later, once its pipes are drained.
  let exitedAt = 0n
  const exitCode = await new Promise<number | null>((resolveClose, reject) => {
    child.on('error', reject)
    child.on('exit', () => {
      exitedAt = process.hrtime.bigint()
    })
    child.on('close', (code) => resolveClose(code))
  })
  const wallSeconds = Number(exitedAt - started) / 1e9
  if (poll !== undefined) clearInterval(poll)
  let peakRss = polledRss
  let cpuSeconds: number | undefined
  if (launcher.gnuTime !== undefined && existsSync(timeFile)) {
    const parsed = parseGnuTime(readFileSync(timeFile, 'utf8'))
    peakRss = parsed.peakRss
    cpuSeconds = parsed.cpuSeconds
  }
  return {
    wallSeconds,
    peakRss,
    cpuSeconds,
    exitCode,
    stdout: stdout.join(''),
    stderrTail: stderr.text(),
    reported: {},
    notes: [],
  }
}

/**
 * Counts the records of a classic pcap, reading it whole in large chunks (which also puts it in
 * the page cache for every tool alike).
 */
/** A classic pcap header without records: Ethernet, microseconds, little endian, snaplen 128. */
function emptyPcap(): Uint8Array {
  const header = Buffer.alloc(24)
  header.writeUInt32LE(0xa1b2c3d4, 0)
  header.writeUInt16LE(2, 4)
  header.writeUInt16LE(4, 6)
  header.writeUInt32LE(DEFAULT_SNAPLEN, 16)
  header.writeUInt32LE(1, 20)
  return header
}

function countRecords(file: string): number {
  const fd = openSync(file, 'r')
  try {
    const chunk = Buffer.alloc(16 * 1024 * 1024)
    let filled = readSync(fd, chunk, 0, chunk.length, null)
    const magic = filled >= 24 ? chunk.readUInt32LE(0) : 0
    const little = magic === 0xa1b2c3d4 || magic === 0xa1b23c4d
    if (!little && magic !== 0xd4c3b2a1 && magic !== 0x4d3cb2a1) {
      throw new Error(`${file} is not a classic pcap file (convert with editcap -F pcap)`)
    }
    let pos = 24
    let packets = 0
    for (;;) {
      while (pos + 16 <= filled) {
        const captured = little ? chunk.readUInt32LE(pos + 8) : chunk.readUInt32BE(pos + 8)
        if (pos + 16 + captured > filled) break
        pos += 16 + captured
        packets++
      }
      // Keep the start of the record cut by the chunk's end, and read on after it.
      chunk.copy(chunk, 0, pos, filled)
      filled -= pos
      pos = 0
      const read = readSync(fd, chunk, filled, chunk.length - filled, null)
      if (read === 0) return packets
      filled += read
    }
  } finally {
    closeSync(fd)
  }
}

/** Says when dist/tally-agent.mjs is missing or older than the agent's sources it bundles. */
function bundleFreshness(): string | undefined {
  if (!existsSync(BUNDLE)) {
    return 'dist/tally-agent.mjs not built: its row is skipped (npm run build:agent to measure it)'
  }
  const built = statSync(BUNDLE).mtimeMs
  const newer = [
    'agent',
    'agent/packets',
    'agent/decode',
    'agent/aggregate',
    'common',
    'common/pcap',
    'protocol',
  ]
    .flatMap((dir) => {
      const full = join(ROOT, dir)
      if (!existsSync(full)) return []
      return readdirSync(full)
        .filter((f) => f.endsWith('.ts'))
        .map((f) => join(dir, f))
    })
    .filter((f) => statSync(join(ROOT, f)).mtimeMs > built)
  return newer.length > 0
    ? `dist/tally-agent.mjs is older than ${newer.slice(0, 3).join(', ')}${newer.length > 3 ? ', ...' : ''}: ` +
        'its row measures the code as it was (npm run build:agent)'
    : undefined
}

function numberAfter(text: string, pattern: RegExp): number | undefined {
  const match = pattern.exec(text)
  return match ? Number(match[1]) : undefined
}

function parseTallyReport(result: RunResult): void {
  const report = JSON.parse(result.stdout) as {
    stats: { packets: number; seconds: number; packets_per_second: number; decoded: number }
  }
  result.reported.packets = report.stats.packets
  result.reported.decoded = report.stats.decoded
  result.reported.inProcessSeconds = report.stats.seconds
  result.reported.inProcessPps = report.stats.packets_per_second
}

function tools(node: string): ToolSpec[] {
  const nfpcapd = findExecutable('nfpcapd')
  const softflowd = findExecutable('softflowd')
  return [
    {
      name: 'tally agent aggregate',
      executable: node,
      args: (file) => [
        join(ROOT, 'bin/tally.ts'),
        'agent',
        'aggregate',
        file,
        '--json',
        '--site-prefix',
        ...SITE_PREFIXES,
      ],
      parse: parseTallyReport,
    },
    {
      name: 'tally-agent (bundle)',
      executable: existsSync(BUNDLE) ? node : undefined,
      args: (file) => [BUNDLE, 'aggregate', file, '--json', '--site-prefix', ...SITE_PREFIXES],
      parse: parseTallyReport,
    },
    {
      name: 'nfpcapd',
      aptPackage: 'nfdump',
      executable: nfpcapd,
      // -r: read the file and exit; -w: nfcapd files into a fresh directory per run.
      args: (file, context) => ['-r', file, '-w', join(context.dir, 'nfpcapd-out')],
      setup: (context) => {
        const out = join(context.dir, 'nfpcapd-out')
        rmSync(out, { recursive: true, force: true })
        mkdirSync(out, { recursive: true })
      },
      parse: (result) => {
        const text = `${result.stdout}\n${result.stderrTail}`
        const processed = numberAfter(text, /Total: Processed: (\d+)/)
        const skipped = numberAfter(text, /Total: Processed: \d+, skipped: (\d+)/)
        const flows = numberAfter(text, /Flows: (\d+), Packets: \d+/)
        const inFlows = numberAfter(text, /Flows: \d+, Packets: (\d+)/)
        if (processed !== undefined) result.reported.packets = processed
        if (skipped !== undefined) result.reported.skipped = skipped
        if (flows !== undefined) result.reported.flows = flows
        if (inFlows !== undefined) result.reported.packetsInFlows = inFlows
        if (skipped)
          result.notes.push(
            `nfpcapd skipped ${skipped} frames ("Unsupported link protocol: 0x88a8": it does not ` +
              'decode 802.1ad/QinQ outer tags); it leaves ARP out of its flows without counting it',
          )
      },
    },
    {
      name: 'softflowd',
      aptPackage: 'softflowd',
      executable: softflowd,
      // -d: foreground; -r: read the file, export what is left at EOF and exit; -6: IPv6 too;
      // -n: NetFlow v9 to a UDP sink of ours on loopback; -c none: no control socket (with a
      // file, softflowd 1.1.0 otherwise blocks in accept() on it and never reads the file);
      // -p: a pid file in the tmp dir.
      args: (file, context) => [
        '-d',
        '-r',
        file,
        '-6',
        '-v',
        '9',
        '-n',
        `127.0.0.1:${context.udpPort}`,
        '-c',
        'none',
        '-p',
        join(context.dir, 'softflowd.pid'),
      ],
      parse: (result, context) => {
        const text = `${result.stdout}\n${result.stderrTail}`
        const processed = numberAfter(text, /Packets processed: (\d+)/)
        const ignored = numberAfter(text, /Ignored packets: (\d+)/)
        const flows = numberAfter(text, /Flows exported: (\d+)/)
        if (processed !== undefined) result.reported.packets = processed + (ignored ?? 0)
        if (processed !== undefined) result.reported.processed = processed
        if (ignored !== undefined) result.reported.ignored = ignored
        if (flows !== undefined) result.reported.flowsExported = flows
        result.reported.datagramsReceived = context.datagrams
        if (ignored)
          result.notes.push(
            `softflowd ignored ${ignored} frames as non-IP (ARP, and QinQ: it reads one 802.1Q tag)`,
          )
      },
    },
    {
      name: 'naive JS loop (Map)',
      executable: node,
      args: (file) => [join(ROOT, 'bench/naive-loop.ts'), file],
      parse: (result) => {
        const report = JSON.parse(result.stdout) as {
          packets: number
          seconds: number
          packets_per_second: number
        }
        result.reported.packets = report.packets
        result.reported.inProcessSeconds = report.seconds
        result.reported.inProcessPps = report.packets_per_second
      },
    },
  ]
}

function fmt(value: number | undefined, digits: number): string {
  return value === undefined || !Number.isFinite(value) ? '-' : value.toFixed(digits)
}

function table(rows: string[][]): string {
  const widths = (rows[0] ?? []).map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)))
  return rows
    .map((row) =>
      row
        .map((cell, i) => (i === 0 ? cell.padEnd(widths[i] ?? 0) : cell.padStart(widths[i] ?? 0)))
        .join('  '),
    )
    .join('\n')
}

function versionOf(executable: string | undefined, args: string[], pattern: RegExp): string {
  if (executable === undefined) return 'not installed'
  const out = spawnSync(executable, args, { encoding: 'utf8', timeout: 5000 })
  const match = pattern.exec(`${out.stdout ?? ''}${out.stderr ?? ''}`)
  return match?.[1] ?? 'unknown'
}

interface BenchFile {
  /** How the tables name it: 'snaplen 128', 'full frames', or the file's name. */
  label: string
  path: string
  packets: number
  bytes: number
}

/** The generated capture for a snaplen, written once into `tmp` and reused by later runs. */
function generatedFile(
  tmp: string,
  packets: number,
  snaplen: number,
  log: (line: string) => void,
): string {
  const suffix = snaplen === DEFAULT_SNAPLEN ? '' : `-snaplen${snaplen}`
  const file = join(
    tmp,
    `generated-v${GENERATOR_VERSION}-${packets}-seed${DEFAULT_SEED}${suffix}.pcap`,
  )
  if (existsSync(file)) {
    log(`using ${file} (already generated)`)
    return file
  }
  log(`generating ${packets} packets (snaplen ${snaplen}) into ${file} ...`)
  const partial = `${file}.partial`
  const stats = generatePcap({ packets, out: partial, seed: DEFAULT_SEED, snaplen })
  renameSync(partial, file)
  log(
    `  ${stats.packets} packets, ${stats.flows} flows, ${(stats.fileBytes / 2 ** 20).toFixed(0)} MiB, ` +
      `in ${stats.seconds.toFixed(2)} s`,
  )
  return file
}

function summarise(
  spec: ToolSpec,
  file: BenchFile,
  list: RunResult[],
  launcher: Launcher,
  context: RunContext,
  failure: string | undefined,
): ToolSummary {
  const base = {
    tool: spec.name,
    aptPackage: spec.aptPackage,
    packets: file.packets,
    runs: [] as number[],
    notes: [] as string[],
  }
  if (spec.executable === undefined) return { ...base, status: 'not installed' }
  const command = [...(launcher.pin ?? []), spec.executable, ...spec.args(file.path, context)].join(
    ' ',
  )
  if (list.length === 0) return { ...base, status: 'failed', command, error: failure }
  const walls = list.map((r) => r.wallSeconds)
  const best = list.reduce((a, b) => (b.wallSeconds < a.wallSeconds ? b : a))
  const inProcess = list
    .map((r) => r.reported.inProcessPps)
    .filter((v): v is number => v !== undefined)
  const rss = list.map((r) => r.peakRss).filter((v): v is number => v !== undefined)
  const cpu = list.map((r) => r.cpuSeconds).filter((v): v is number => v !== undefined)
  const notes = new Set(list.flatMap((r) => r.notes))
  const counted = list.map((r) => r.reported.packets).filter((v) => v !== undefined)
  if (spec.name.startsWith('tally') && counted.some((n) => n !== file.packets)) {
    notes.add(`${spec.name} counted ${counted.join(', ')} packets, the file has ${file.packets}`)
  }
  return {
    ...base,
    status: 'ok',
    command,
    runs: walls.map((w) => Number(w.toFixed(4))),
    bestWallSeconds: Math.min(...walls),
    medianWallSeconds: median(walls),
    mppsBestWall: file.packets / Math.min(...walls) / 1e6,
    mppsMedianWall: file.packets / median(walls) / 1e6,
    peakRssMiB: rss.length > 0 ? Math.max(...rss) / 2 ** 20 : undefined,
    cpuSecondsBestRun: best.cpuSeconds,
    cpuSecondsMedian: cpu.length > 0 ? median(cpu) : undefined,
    // GNU time counts in hundredths: a tool that took less has no figure.
    mppsPerCpuSecond:
      cpu.length > 0 && median(cpu) > 0 ? file.packets / median(cpu) / 1e6 : undefined,
    inProcessMppsBest: inProcess.length > 0 ? Math.max(...inProcess) / 1e6 : undefined,
    inProcessMppsMedian: inProcess.length > 0 ? median(inProcess) / 1e6 : undefined,
    reported: best.reported,
    notes: [...notes],
    error: failure,
  }
}

function resultTable(summaries: ToolSummary[]): string[] {
  const rows: string[][] = [
    [
      'tool',
      'packets',
      'best wall s',
      'median wall s',
      'Mpps (best/median wall)',
      'peak RSS MiB',
      'CPU s (median)',
      'Mpps per CPU s',
      'in-process Mpps (best/median)',
    ],
  ]
  const missing: string[] = []
  for (const s of summaries) {
    if (s.status !== 'ok') {
      missing.push(
        s.status === 'not installed'
          ? `${s.tool}: not installed (${s.aptPackage ? `apt-get install ${s.aptPackage}` : 'npm run build:agent'})`
          : `${s.tool}: failed: ${s.error ?? ''}`,
      )
      const status =
        s.status === 'not installed' && s.aptPackage === undefined ? 'not built' : s.status
      rows.push([s.tool, status, '-', '-', '-', '-', '-', '-', '-'])
      continue
    }
    rows.push([
      s.tool,
      String(s.packets),
      fmt(s.bestWallSeconds, 3),
      fmt(s.medianWallSeconds, 3),
      `${fmt(s.mppsBestWall, 2)} / ${fmt(s.mppsMedianWall, 2)}`,
      fmt(s.peakRssMiB, 0),
      fmt(s.cpuSecondsMedian, 2),
      fmt(s.mppsPerCpuSecond, 2),
      s.inProcessMppsBest === undefined
        ? '-'
        : `${fmt(s.inProcessMppsBest, 2)} / ${fmt(s.inProcessMppsMedian, 2)}`,
    ])
  }
  return [table(rows), ...missing]
}

/** Each tally row against the target and against nfpcapd and softflowd of the same file. */
function verdicts(summaries: ToolSummary[]): { lines: string[]; json: Record<string, unknown>[] } {
  const target = TARGET_PPS / 1e6
  const others = summaries.filter((s) => s.tool === 'nfpcapd' || s.tool === 'softflowd')
  const lines: string[] = []
  const json: Record<string, unknown>[] = []
  for (const tally of summaries.filter((s) => s.tool.startsWith('tally'))) {
    if (tally.status !== 'ok' || tally.mppsMedianWall === undefined) continue
    const wall = tally.mppsMedianWall
    const versus = others.map((o) => ({
      tool: o.tool,
      mppsMedianWall: o.mppsMedianWall,
      ratio: o.mppsMedianWall === undefined ? undefined : wall / o.mppsMedianWall,
      mppsPerCpuSecond: o.mppsPerCpuSecond,
      cpuRatio:
        o.mppsPerCpuSecond === undefined || tally.mppsPerCpuSecond === undefined
          ? undefined
          : tally.mppsPerCpuSecond / o.mppsPerCpuSecond,
    }))
    const against = (ratio: 'ratio' | 'cpuRatio', mpps: 'mppsMedianWall' | 'mppsPerCpuSecond') =>
      versus
        .map((v) =>
          v[ratio] === undefined
            ? `${v.tool} not measured`
            : `${fmt(v[ratio], 2)}x ${v.tool} (${fmt(v[mpps], 2)})`,
        )
        .join(', ')
    const perCpu = tally.mppsPerCpuSecond
    lines.push(
      `${tally.tool}: ${fmt(wall, 2)} Mpps whole process (median run; best ${fmt(tally.mppsBestWall, 2)}): ` +
        `target ${target} ${wall >= target ? 'MET' : 'MISSED'}; ${against('ratio', 'mppsMedianWall')}`,
    )
    if (perCpu !== undefined) {
      lines.push(
        `${' '.repeat(tally.tool.length)}  ${fmt(perCpu, 2)} Mpps per CPU second (median): target ${target} ` +
          `${perCpu >= target ? 'MET' : 'MISSED'} on a core of its own; ${against('cpuRatio', 'mppsPerCpuSecond')}`,
      )
    }
    json.push({
      tool: tally.tool,
      targetMpps: target,
      wallMppsMedian: wall,
      wallMppsBest: tally.mppsBestWall,
      mppsPerCpuSecond: perCpu,
      inProcessMppsMedian: tally.inProcessMppsMedian,
      metTarget: wall >= target,
      metTargetPerCpuSecond: perCpu === undefined ? undefined : perCpu >= target,
      versus,
    })
  }
  if (lines.length === 0) lines.push('tally did not run: no verdict')
  return { lines, json }
}

/** The captures the run measures: the --file arguments, or the generated ones --frames names. */
function benchPaths(
  values: { file?: string[] | undefined; frames: string },
  packetsWanted: number,
  tmp: string,
  log: (line: string) => void,
): { label: string; path: string }[] {
  if (values.file !== undefined) {
    return values.file.map((f) => ({ label: basename(f), path: resolve(f) }))
  }
  const paths: { label: string; path: string }[] = []
  if (!Number.isInteger(packetsWanted) || packetsWanted < 1) {
    throw new Error('--packets must be a positive integer')
  }
  const frames = values.frames
  if (frames !== 'snap' && frames !== 'full' && frames !== 'both') {
    throw new Error('--frames must be snap, full or both')
  }
  if (frames !== 'full') {
    const path = generatedFile(tmp, packetsWanted, DEFAULT_SNAPLEN, log)
    paths.push({ label: `snaplen ${DEFAULT_SNAPLEN}`, path })
  }
  if (frames !== 'snap') {
    const path = generatedFile(tmp, packetsWanted, FULL_FRAME_SNAPLEN, log)
    paths.push({ label: 'full frames', path })
  }
  return paths
}

/** How each process is launched (pinning, GNU time) and the sentences that say so. */
function measurementSetup(
  cpu: string,
  rss: string,
): { launcher: Launcher; pinning: string; memory: string } {
  const taskset = findExecutable('taskset')
  if (rss !== 'auto' && rss !== 'poll') throw new Error('--rss must be auto or poll')
  const gnuTimeInstalled = existsSync('/usr/bin/time')
  const gnuTime = gnuTimeInstalled && rss === 'auto' ? '/usr/bin/time' : undefined
  const launcher: Launcher = {
    pin: taskset ? [taskset, '-c', cpu] : undefined,
    gnuTime,
  }
  const pinning = taskset
    ? `pinned to CPU ${cpu} with taskset -c ${cpu}`
    : 'NOT pinned (taskset missing: apt-get install util-linux)'
  const memory = gnuTime
    ? 'peak RSS from /usr/bin/time -v'
    : `peak RSS by polling VmHWM in /proc/PID/status every 5 ms (${
        gnuTimeInstalled ? '--rss poll' : '/usr/bin/time missing: apt-get install time'
      })`
  return { launcher, pinning, memory }
}

const resultKey = (file: BenchFile, spec: ToolSpec) => `${file.path}\0${spec.name}`

/** What the rounds measured: runs per file and tool, the failures, and tally's startup runs. */
interface Measured {
  results: Map<string, RunResult[]>
  failures: Map<string, string>
  startupRuns: Map<string, RunResult[]>
}

interface Rounds {
  runs: number
  files: BenchFile[]
  specs: ToolSpec[]
  startupSpecs: ToolSpec[]
  empty: string
  launcher: Launcher
  context: RunContext
  node: string
  tmp: string
  log: (line: string) => void
}

/** Tally's startup alone, once per tally row: the aggregate of the capture without packets. */
async function measureStartup(r: Rounds, startupRuns: Map<string, RunResult[]>): Promise<void> {
  for (const spec of r.startupSpecs) {
    const startup = await runOnce(r.launcher, r.node, spec.args(r.empty, r.context), r.tmp)
    if (startup.exitCode !== 0) continue
    const list = startupRuns.get(spec.name) ?? []
    list.push(startup)
    startupRuns.set(spec.name, list)
  }
}

/** One run of one tool on one file, recorded in `measured` (a failure stops that tool there). */
async function measureTool(
  r: Rounds,
  measured: Measured,
  round: number,
  file: BenchFile,
  spec: ToolSpec,
): Promise<void> {
  const { results, failures } = measured
  const { context } = r
  if (spec.executable === undefined || failures.has(resultKey(file, spec))) return
  await spec.setup?.(context)
  context.datagrams = 0
  const result = await runOnce(r.launcher, spec.executable, spec.args(file.path, context), r.tmp)
  if (spec.name === 'softflowd') await new Promise((ok) => setTimeout(ok, 50)) // last datagrams
  if (result.exitCode !== 0) {
    const why = `exit code ${result.exitCode}: ${result.stderrTail.trim().split('\n').slice(-3).join(' / ')}`
    failures.set(resultKey(file, spec), why)
    r.log(`  ${file.label}: ${spec.name}: FAILED (${why})`)
    return
  }
  try {
    spec.parse(result, context)
  } catch (err) {
    result.notes.push(`could not read its output: ${(err as Error).message}`)
  }
  const list = results.get(resultKey(file, spec)) ?? []
  list.push(result)
  results.set(resultKey(file, spec), list)
  r.log(
    `  round ${round}, ${file.label.padEnd(12)} ${spec.name.padEnd(22)} ${result.wallSeconds.toFixed(3)} s wall` +
      (result.reported.inProcessSeconds !== undefined
        ? `, ${result.reported.inProcessSeconds.toFixed(3)} s in-process`
        : ''),
  )
}

/** The rounds: in each, tally's startup, then every tool on every file, taking turns. */
async function measureRounds(r: Rounds): Promise<Measured> {
  const measured: Measured = { results: new Map(), failures: new Map(), startupRuns: new Map() }
  for (let round = 1; round <= r.runs; round++) {
    await measureStartup(r, measured.startupRuns)
    for (const file of r.files) {
      for (const spec of r.specs) await measureTool(r, measured, round, file, spec)
    }
  }
  return measured
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      file: { type: 'string', multiple: true },
      frames: { type: 'string', default: 'both' },
      packets: { type: 'string', default: String(DEFAULT_PACKETS) },
      runs: { type: 'string', default: '3' },
      tmp: { type: 'string', default: join(tmpdir(), 'tally-bench') },
      cpu: { type: 'string', default: '0' },
      /** auto: /usr/bin/time when present, else polling; poll: always poll /proc. */
      rss: { type: 'string', default: 'auto' },
    },
  })
  const runs = Number(values.runs)
  const packetsWanted = Number(values.packets)
  if (!Number.isInteger(runs) || runs < 1) throw new Error('--runs must be a positive integer')
  const tmp = resolve(values.tmp)
  mkdirSync(tmp, { recursive: true })
  const log = (line: string) => process.stderr.write(`${line}\n`)

  const paths = benchPaths(values, packetsWanted, tmp, log)
  const files: BenchFile[] = paths.map(({ label, path }) => ({
    label,
    path,
    packets: countRecords(path),
    bytes: statSync(path).size,
  }))

  const { launcher, pinning, memory } = measurementSetup(values.cpu, values.rss)
  const node = process.execPath
  const specs = tools(node)
  for (const f of files) {
    log(
      `file (${f.label}): ${f.path} (${f.packets} packets, ${(f.bytes / 2 ** 20).toFixed(0)} MiB)`,
    )
  }
  log(`${pinning}; ${memory}; ${runs} runs each, tools and files taking turns`)
  const loadAtStart = loadavg()[0] ?? 0
  if (loadAtStart > 0.5) {
    log(
      `note: load average ${loadAtStart.toFixed(2)}: other work shares the cores, so wall clocks ` +
        'are inflated; compare tools within this run, and the CPU-second figures',
    )
  }
  const bundleNote = bundleFreshness()
  if (bundleNote !== undefined) log(`note: ${bundleNote}`)

  // A loopback sink for softflowd's NetFlow export, so nothing leaves the host.
  const sink = createSocket('udp4')
  await new Promise<void>((ok) => sink.bind(0, '127.0.0.1', () => ok()))
  const context: RunContext = { dir: tmp, udpPort: sink.address().port, datagrams: 0 }
  sink.on('message', () => {
    context.datagrams++
  })

  // Tally's fixed cost: the same command on a capture without packets (a pcap header alone):
  // start, load what aggregate loads, report and exit.
  const empty = join(tmp, 'empty.pcap')
  writeFileSync(empty, emptyPcap())
  const startupSpecs = specs.filter((s) => s.name.startsWith('tally') && s.executable !== undefined)
  const { results, failures, startupRuns } = await measureRounds({
    runs,
    files,
    specs,
    startupSpecs,
    empty,
    launcher,
    context,
    node,
    tmp,
    log,
  })
  sink.close()

  const startupSummary = [...startupRuns].map(([tool, list]) => ({
    tool,
    command: `${node} ${(startupSpecs.find((s) => s.name === tool)?.args(empty, context) ?? []).join(' ')}`,
    bestWallSeconds: Math.min(...list.map((r) => r.wallSeconds)),
    medianWallSeconds: median(list.map((r) => r.wallSeconds)),
    cpuSecondsMedian: median(list.map((r) => r.cpuSeconds ?? 0)),
    peakRssMiB: Math.max(...list.map((r) => r.peakRss ?? 0)) / 2 ** 20,
  }))

  const environment = {
    date: new Date().toISOString(),
    node: process.version,
    cpu: cpus()[0]?.model ?? 'unknown',
    cpus: cpus().length,
    kernel: release(),
    loadAverageAtStart: Number(loadAtStart.toFixed(2)),
    loadAverage: loadavg().map((l) => Number(l.toFixed(2))),
    pinning,
    memory,
    nfpcapd: versionOf(
      specs.find((s) => s.name === 'nfpcapd')?.executable,
      ['-V'],
      /Version: ([\w.-]+)/,
    ),
    softflowd: versionOf(
      specs.find((s) => s.name === 'softflowd')?.executable,
      ['-h'],
      /softflowd version (\d+(?:\.\d+)*)/,
    ),
  }

  const out = [
    '',
    `Aggregate benchmark, ${environment.date}; ${runs} runs per tool and file; ${pinning}; ${memory}`,
    `  node ${environment.node}, ${environment.cpu} (${environment.cpus} CPUs), nfpcapd ${environment.nfpcapd}, ` +
      `softflowd ${environment.softflowd}; load average ${environment.loadAverageAtStart} at the start, ` +
      `${environment.loadAverage.join(' ')} at the end`,
    '  Mpps = packets in the file / wall clock of the whole process (startup included); ' +
      'Mpps per CPU s = packets / its user + system CPU seconds (GNU time)',
  ]
  const fileResults: Record<string, unknown>[] = []
  for (const file of files) {
    const summaries = specs.map((spec) =>
      summarise(
        spec,
        file,
        results.get(resultKey(file, spec)) ?? [],
        launcher,
        context,
        failures.get(resultKey(file, spec)),
      ),
    )
    const verdict = verdicts(summaries)
    out.push(
      '',
      `${file.label}: ${file.path}, ${file.packets} packets, ${(file.bytes / 2 ** 20).toFixed(0)} MiB ` +
        `(${Math.round(file.bytes / file.packets)} bytes per record)`,
      ...resultTable(summaries),
      ...verdict.lines,
      ...summaries.flatMap((s) => s.notes.map((n) => `note: ${n}`)),
    )
    fileResults.push({ ...file, results: summaries, verdict: verdict.json })
  }
  out.push(
    '',
    ...(startupSummary.length === 0
      ? ['tally startup alone (aggregate of a capture without packets): did not run']
      : startupSummary.map(
          (t) =>
            `${t.tool} startup alone (aggregate of a capture without packets, same pinning): ` +
            `best ${fmt(t.bestWallSeconds, 3)} s, median ${fmt(t.medianWallSeconds, 3)} s wall, ` +
            `${fmt(t.cpuSecondsMedian, 2)} s CPU, peak RSS ${fmt(t.peakRssMiB, 0)} MiB`,
        )),
  )
  if (bundleNote !== undefined) out.push(`note: ${bundleNote}`)
  process.stdout.write(`${out.join('\n')}\n`)

  const resultsDir = join(tmp, 'results')
  mkdirSync(resultsDir, { recursive: true })
  const jsonPath = join(resultsDir, 'latest.json')
  writeFileSync(
    jsonPath,
    `${JSON.stringify({ environment, runs, files: fileResults, tallyStartup: startupSummary }, null, 2)}\n`,
  )
  process.stdout.write(`\nJSON: ${jsonPath}\n`)
}

await main()
