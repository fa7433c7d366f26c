/**
 * Live capture through a tcpdump child process: `tcpdump -i IF -s SNAPLEN -U -n --immediate-mode
 * -w - [-- FILTER]`, its stdout (classic pcap) read by our own PcapReader (see
 * common/pcap/pcap-reader.ts for why not the `pcap-parser` package).
 *
 * Privacy: for the aggregate capture (tiers T and A) the snaplen MUST stay headers-only. The
 * default of 128 bytes covers Ethernet + VLAN tags + IPv6 with extension headers + TCP with
 * options, and nothing else, so that payloads never enter this process; the kernel truncates
 * every packet before tcpdump sees it. A larger snaplen is only for a subject capture under a
 * verified grant, whose BPF filter matches the subject alone.
 *
 * Supervision: tcpdump is restarted when it exits or dies, with exponential backoff (base 1 s,
 * max 60 s, reset once a run has lasted 60 s). When it cannot work at all (not installed, not
 * allowed to capture, no such interface, bad filter) an `unavailable` event says why in a
 * sentence for the operator and it is retried every `restartMaxMs` in case that is fixed.
 * Nothing here throws at run time.
 *
 * Statistics: SIGUSR1 makes tcpdump print its counters on stderr
 * ("tcpdump: N packets captured, N packets received by filter, N packets dropped by kernel[,
 * N packets dropped by interface]"); at exit it prints the same numbers one per line. libpcap's
 * counters are cumulative for one run; totals of earlier runs are added on top.
 *
 * Leftovers: each tcpdump is listed in the agent's state directory while it runs (leftovers.ts),
 * so that the next agent stops it if this one was killed outright. `-U` (a packet written as soon
 * as it is captured) with `--immediate-mode` (handed over by the kernel without batching) also
 * means an orphaned tcpdump hits the closed pipe, and ends, at its first packet.
 */

import { type ChildProcess, spawn } from 'node:child_process'
import { type PacketSink, type PcapHeader, PcapReader } from '../../common/pcap/pcap-reader.ts'
import { captureChildren } from './leftovers.ts'

/** Headers only: enough for Ethernet, 802.1Q/QinQ, IPv6 extension headers and TCP options. */
export const DEFAULT_SNAPLEN = 128

export interface LiveCaptureOptions {
  /** Interface to capture on, e.g. `eth0` (`any` works too, with link type Linux cooked). */
  interface: string
  /**
   * Bytes kept per packet, default 128. Must stay headers-only for the aggregate capture (see
   * the module comment): payloads must never reach the agent outside a grant.
   */
  snaplen?: number
  /** BPF filter expression, compiled by libpcap into the kernel. */
  filter?: string
  /** Default `tcpdump` (looked up on PATH). */
  tcpdumpPath?: string | undefined
  onPacket: PacketSink
  /** Called once per tcpdump run (each run writes a fresh pcap header). */
  onHeader?: (h: PcapHeader) => void
  /** Lifecycle events; must not throw. */
  onEvent?: ((e: CaptureEvent) => void) | undefined
  /** First restart delay, default 1000 ms; doubles per consecutive failure. */
  restartBaseMs?: number | undefined
  /** Longest restart delay, default 60000 ms; also the retry delay while unavailable. */
  restartMaxMs?: number | undefined
}

export type CaptureEvent =
  /** tcpdump is listening (it has printed "listening on ..."). */
  | { kind: 'started'; pid: number }
  /**
   * tcpdump ended. `stderr` is the tail of what it printed (plus lines starting with `tally:`
   * for problems we found in its output). `restartInMs` is -1 when no restart follows (stop()).
   */
  | {
      kind: 'exited'
      code: number | null
      signal: string | null
      stderr: string
      restartInMs: number
    }
  /** tcpdump cannot capture at all; `reason` is a sentence for the operator. Retried slowly. */
  | { kind: 'unavailable'; reason: string }

/** Cumulative since start(), across restarts. */
export interface CaptureStats {
  /** Packets that passed the filter (libpcap ps_recv). */
  received: number
  /** Dropped for lack of buffer space (ps_drop): we or tcpdump were too slow. */
  droppedByKernel: number
  /** Dropped by the interface or its driver (ps_ifdrop). */
  droppedByInterface: number
  /** Records delivered to onPacket. */
  packets: number
}

const RESET_BACKOFF_AFTER_MS = 60_000
/** How long stats() waits for tcpdump to be listening before it may send SIGUSR1. */
const READY_TIMEOUT_MS = 3_000
/** How long stats() waits for tcpdump's answer to SIGUSR1. */
const STATS_TIMEOUT_MS = 2_000
/** Grace between SIGTERM and SIGKILL in stop(). */
const KILL_AFTER_MS = 5_000
const STDERR_TAIL_CHARS = 4_096

interface Counters {
  received: number
  droppedByKernel: number
  droppedByInterface: number
}

interface Run {
  proc: ChildProcess
  reader: PcapReader
  spawnedAt: number
  pid: number | undefined
  /** "listening on" seen: the SIGUSR1 handler is installed. */
  ready: boolean
  readyWaiters: Array<() => void>
  /** Resolves pending stats() calls when the next counters line (or the exit) arrives. */
  statsWaiters: Array<() => void>
  counters: Counters
  stderrTail: string
  lineBuffer: string
  /** Our own diagnostics, reported with the exit. */
  notes: string[]
  /** Set when the stream is unusable and we killed the run ourselves. */
  failed: boolean
  finished: boolean
  closed: Promise<void>
  resolveClosed: () => void
  spawnError: NodeJS.ErrnoException | undefined
}

const zeroCounters = (): Counters => ({ received: 0, droppedByKernel: 0, droppedByInterface: 0 })

export class LiveCapture {
  #options: LiveCaptureOptions
  #path: string
  #snaplen: number
  #baseMs: number
  #maxMs: number
  #run: Run | undefined = undefined
  #active = false
  #restartTimer: NodeJS.Timeout | undefined = undefined
  #failures = 0
  /** Totals of finished runs. */
  #previous: Counters = zeroCounters()
  #previousPackets = 0

  constructor(options: LiveCaptureOptions) {
    const snaplen = options.snaplen ?? DEFAULT_SNAPLEN
    if (!Number.isInteger(snaplen) || snaplen < 1 || snaplen > 262_144) {
      throw new RangeError(`snaplen must be an integer from 1 to 262144, got ${snaplen}`)
    }
    if (options.interface === '' || options.interface.startsWith('-')) {
      throw new RangeError(`invalid capture interface name ${JSON.stringify(options.interface)}`)
    }
    this.#options = options
    this.#path = options.tcpdumpPath ?? 'tcpdump'
    this.#snaplen = snaplen
    this.#baseMs = options.restartBaseMs ?? 1_000
    this.#maxMs = options.restartMaxMs ?? 60_000
  }

  /** Whether a tcpdump process is currently running. */
  get running(): boolean {
    return this.#run !== undefined && !this.#run.finished
  }

  /** The tcpdump argument list (without the program). */
  get args(): string[] {
    const args = ['-i', this.#options.interface, '-s', String(this.#snaplen), '-U', '-n']
    args.push('--immediate-mode', '-w', '-')
    // `--` ends the options, so that a filter can never be read as one.
    if (this.#options.filter !== undefined && this.#options.filter.trim() !== '') {
      args.push('--', this.#options.filter)
    }
    return args
  }

  start(): void {
    if (this.#active) return
    this.#active = true
    this.#failures = 0
    this.#spawn()
  }

  /** Stops tcpdump (SIGTERM, SIGKILL after 5 s) and waits for it to exit and report its counters. */
  async stop(): Promise<void> {
    this.#active = false
    if (this.#restartTimer !== undefined) {
      clearTimeout(this.#restartTimer)
      this.#restartTimer = undefined
    }
    const run = this.#run
    if (run === undefined || run.finished) return
    run.proc.kill('SIGTERM')
    const killer = setTimeout(() => run.proc.kill('SIGKILL'), KILL_AFTER_MS)
    try {
      await run.closed
    } finally {
      clearTimeout(killer)
    }
  }

  /**
   * Current cumulative counters. While tcpdump runs, asks it (SIGUSR1) and waits for its answer
   * (at most ~2 s); otherwise, or if it does not answer, resolves with the last known numbers.
   */
  async stats(): Promise<CaptureStats> {
    const run = this.#run
    if (run === undefined || run.finished) return this.#snapshot()
    if (!run.ready) {
      await waitFor(run.readyWaiters, READY_TIMEOUT_MS)
      if (!run.ready || run.finished) return this.#snapshot()
    }
    const first = run.statsWaiters.length === 0
    const answered = waitFor(run.statsWaiters, STATS_TIMEOUT_MS)
    // Concurrent calls share one request.
    if (first) run.proc.kill('SIGUSR1')
    await answered
    return this.#snapshot()
  }

  #snapshot(): CaptureStats {
    const run = this.#run
    const current = run !== undefined && !run.finished ? run.counters : zeroCounters()
    return {
      received: this.#previous.received + current.received,
      droppedByKernel: this.#previous.droppedByKernel + current.droppedByKernel,
      droppedByInterface: this.#previous.droppedByInterface + current.droppedByInterface,
      packets:
        this.#previousPackets + (run !== undefined && !run.finished ? run.reader.packets : 0),
    }
  }

  #emit(event: CaptureEvent): void {
    this.#options.onEvent?.(event)
  }

  #spawn(): void {
    this.#restartTimer = undefined
    if (!this.#active) return
    let proc: ChildProcess
    try {
      proc = spawn(this.#path, this.args, {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, LC_ALL: 'C' },
      })
    } catch (error) {
      // Synchronous spawn failures (bad arguments, EPERM, ...): not fatal to the agent.
      this.#unavailable(`tcpdump could not be started: ${(error as Error).message}`)
      return
    }
    let resolveClosed: () => void = () => {}
    const closed = new Promise<void>((resolve) => {
      resolveClosed = resolve
    })
    const run: Run = {
      proc,
      reader: new PcapReader(this.#options.onPacket, this.#options.onHeader),
      spawnedAt: Date.now(),
      pid: undefined,
      ready: false,
      readyWaiters: [],
      statsWaiters: [],
      counters: zeroCounters(),
      stderrTail: '',
      lineBuffer: '',
      notes: [],
      failed: false,
      finished: false,
      closed,
      resolveClosed,
      spawnError: undefined,
    }
    this.#run = run

    proc.on('spawn', () => {
      run.spawnedAt = Date.now()
      run.pid = proc.pid
      // Listed in the state directory until it exits, so that the next agent can stop it if
      // this one is killed outright (see leftovers.ts).
      if (proc.pid !== undefined) captureChildren.add(proc.pid, this.#path)
    })
    proc.on('exit', () => {
      if (run.pid !== undefined) captureChildren.remove(run.pid)
    })
    proc.on('error', (error: NodeJS.ErrnoException) => {
      // Before 'spawn': the program could not be executed. Later errors (a failed kill) are moot.
      if (run.pid === undefined && !run.finished) {
        run.spawnError = error
        this.#finish(run, null, null)
      }
    })
    proc.stdout?.on('data', (chunk: Buffer) => {
      if (run.failed) return
      try {
        run.reader.push(chunk)
      } catch (error) {
        // A corrupt pcap stream cannot be resynchronised; a throwing sink is a bug we must not
        // let crash the agent. Either way: kill this run and start a fresh one.
        run.failed = true
        run.notes.push(`tally: stopped tcpdump: ${(error as Error).message}`)
        proc.kill('SIGTERM')
      }
    })
    proc.stderr?.setEncoding('utf8')
    proc.stderr?.on('data', (text: string) => this.#stderr(run, text))
    proc.on('close', (code: number | null, signal: NodeJS.Signals | null) =>
      this.#finish(run, code, signal),
    )
  }

  #stderr(run: Run, text: string): void {
    run.stderrTail = (run.stderrTail + text).slice(-STDERR_TAIL_CHARS)
    const lines = (run.lineBuffer + text).split('\n')
    run.lineBuffer = lines.pop() ?? ''
    for (const line of lines) this.#line(run, line)
  }

  #line(run: Run, line: string): void {
    if (!run.ready && line.includes('listening on')) {
      run.ready = true
      settle(run.readyWaiters)
      if (run.pid !== undefined) this.#emit({ kind: 'started', pid: run.pid })
      return
    }
    const stats = parseStatsLine(line)
    if (stats === undefined) return
    if (stats.received !== undefined) run.counters.received = stats.received
    if (stats.droppedByKernel !== undefined) {
      run.counters.droppedByKernel = stats.droppedByKernel
      // tcpdump leaves out "dropped by interface" when it is zero.
      run.counters.droppedByInterface = stats.droppedByInterface ?? 0
      settle(run.statsWaiters)
    } else if (stats.droppedByInterface !== undefined) {
      run.counters.droppedByInterface = stats.droppedByInterface
    }
  }

  #finish(run: Run, code: number | null, signal: NodeJS.Signals | null): void {
    if (run.finished) return
    if (run.lineBuffer !== '') this.#line(run, run.lineBuffer)
    run.lineBuffer = ''
    run.finished = true
    const { truncatedBytes } = run.reader.end()
    if (truncatedBytes > 0 && !run.failed) {
      run.notes.push(`tally: discarded ${truncatedBytes} bytes of a record cut off at exit`)
    }
    this.#previous.received += run.counters.received
    this.#previous.droppedByKernel += run.counters.droppedByKernel
    this.#previous.droppedByInterface += run.counters.droppedByInterface
    this.#previousPackets += run.reader.packets
    settle(run.readyWaiters)
    settle(run.statsWaiters)

    const reason = run.spawnError
      ? this.#spawnErrorReason(run.spawnError)
      : unavailableReason(run.stderrTail, this.#options.interface, this.#options.filter)
    let restartInMs = -1
    if (this.#active) {
      if (reason !== undefined) {
        restartInMs = this.#maxMs
      } else {
        const lasted = run.pid === undefined ? 0 : Date.now() - run.spawnedAt
        if (lasted >= RESET_BACKOFF_AFTER_MS) this.#failures = 0
        restartInMs = Math.min(this.#maxMs, this.#baseMs * 2 ** Math.min(this.#failures, 30))
        this.#failures++
      }
      this.#restartTimer = setTimeout(() => this.#spawn(), restartInMs)
    }
    run.resolveClosed()
    if (run.spawnError === undefined) {
      const stderr = [run.stderrTail.trimEnd(), ...run.notes].filter((s) => s !== '').join('\n')
      this.#emit({ kind: 'exited', code, signal, stderr, restartInMs })
    }
    if (reason !== undefined && this.#active) this.#emit({ kind: 'unavailable', reason })
  }

  #spawnErrorReason(error: NodeJS.ErrnoException): string {
    const path = this.#path
    if (error.code === 'ENOENT') {
      return path === 'tcpdump'
        ? 'tcpdump is not installed (not found on PATH): install it with apt-get install tcpdump'
        : `tcpdump was not found at ${path}: install it with apt-get install tcpdump or correct the configured tcpdump path`
    }
    if (error.code === 'EACCES') {
      return `${path} cannot be executed (permission denied): check that it is tcpdump and executable by the agent's user`
    }
    return `tcpdump (${path}) could not be started: ${error.message}`
  }

  #unavailable(reason: string): void {
    this.#restartTimer = setTimeout(() => this.#spawn(), this.#maxMs)
    this.#emit({ kind: 'unavailable', reason })
  }
}

/**
 * Recognises the failures that a restart cannot fix by itself, in tcpdump's own words, and says
 * what to do about them. undefined for anything else (a crash, a signal, ...).
 */
export function unavailableReason(
  stderr: string,
  iface: string,
  filter: string | undefined,
): string | undefined {
  if (/You don't have permission|Operation not permitted|Permission denied/i.test(stderr)) {
    return (
      `tcpdump lacks permission to capture on ${iface}: run the agent as root or give tcpdump ` +
      'CAP_NET_RAW (setcap cap_net_raw,cap_net_admin=eip $(command -v tcpdump))'
    )
  }
  if (/No such device|doesn't exist|SIOCGIFHWADDR/i.test(stderr)) {
    return `capture interface ${iface} does not exist on this host: check the configured interface (ip link lists them)`
  }
  const user = /Couldn't find user '([^']*)'/.exec(stderr)
  if (user !== null) {
    // tcpdump built --with-user drops root to that user after opening the device.
    return (
      `tcpdump cannot switch to its user '${user[1]}' after opening ${iface}: that user does ` +
      `not exist on this host; create it (useradd --system ${user[1]}) or run the agent unprivileged with CAP_NET_RAW`
    )
  }
  if (/can't parse filter expression|syntax error|illegal token|unknown host/i.test(stderr)) {
    const detail = stderr.split('\n').find((l) => /filter|syntax|illegal|unknown/i.test(l)) ?? ''
    return `the capture filter ${JSON.stringify(filter ?? '')} is not valid BPF: ${detail.trim()}`
  }
  return undefined
}

/**
 * The lines in which tcpdump explains itself ("tcpdump: eth9: No such device exists"), without
 * its banner, its statistics and our own `tally:` notes: what an operator needs to read when it
 * exits; undefined when it said nothing (a signal). Only the aggregate capture's messages reach a log this
 * way; they name the interface or a user, never a packet.
 */
export function tcpdumpSaid(stderr: string): string | undefined {
  const lines = stderr
    .split('\n')
    .map((line) => line.trim())
    .filter(
      (line) =>
        line !== '' &&
        !line.includes('listening on') &&
        !line.startsWith('tally:') &&
        parseStatsLine(line) === undefined,
    )
  return lines.length === 0 ? undefined : lines.slice(-3).join(' ')
}

/** Numbers from one line of tcpdump's statistics output, whichever of them the line has. */
export function parseStatsLine(line: string):
  | {
      captured?: number
      received?: number
      droppedByKernel?: number
      droppedByInterface?: number
    }
  | undefined {
  const captured = /(\d+) packets? captured/.exec(line)
  const received = /(\d+) packets? received by filter/.exec(line)
  const kernel = /(\d+) packets? dropped by kernel/.exec(line)
  const iface = /(\d+) packets? dropped by interface/.exec(line)
  if (!captured && !received && !kernel && !iface) return undefined
  const out: {
    captured?: number
    received?: number
    droppedByKernel?: number
    droppedByInterface?: number
  } = {}
  if (captured) out.captured = Number(captured[1])
  if (received) out.received = Number(received[1])
  if (kernel) out.droppedByKernel = Number(kernel[1])
  if (iface) out.droppedByInterface = Number(iface[1])
  return out
}

function settle(waiters: Array<() => void>): void {
  const pending = waiters.splice(0)
  for (const resolve of pending) resolve()
}

/** Adds a waiter to the list and resolves when it is settled or after `ms`, whichever is first. */
function waitFor(waiters: Array<() => void>, ms: number): Promise<void> {
  return new Promise<void>((resolve) => {
    const done = () => {
      clearTimeout(timer)
      const i = waiters.indexOf(done)
      if (i >= 0) waiters.splice(i, 1)
      resolve()
    }
    const timer = setTimeout(done, ms)
    waiters.push(done)
  })
}
