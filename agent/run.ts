/**
 * The agent: every interval, on the clock's boundaries, one batch of host metrics goes into the
 * spool; the sender drains the spool to the collector. Collecting never waits for sending, so a
 * collector outage only grows the spool.
 *
 * A batch's interval is measured on the monotonic clock and placed on the wall clock by its end:
 * a wall-clock step (NTP, an operator) can make consecutive batches overlap or leave a hole, but
 * never gives an interval that ends before it starts or is longer than what was counted.
 */
import { existsSync, mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { gzipSync } from 'node:zlib'
import type { Logger } from 'pino'
import { type HostBatch, type HostSample, PROTOCOL_VERSION } from '../protocol/v1.ts'
import type { TrafficCapture } from './aggregate/live-traffic.ts'
import { HostMetricsCollector } from './collect/host.ts'
import type { AgentConfig } from './config.ts'
import { type AgentCredential, credentialPath, EnrollmentError, ensureEnrolled } from './enroll.ts'
import { Investigations } from './investigations.ts'
import {
  CAPTURE_CHILDREN_FILE,
  captureChildren,
  stopLeftoverCaptures,
} from './packets/leftovers.ts'
import { httpDeliver, Sender } from './ship/sender.ts'
import { type DropReason, type LossCounters, Spool, type SpoolStats } from './ship/spool.ts'
import { AGENT_VERSION } from './version.ts'

/** How long a stopping agent keeps trying to deliver what it has spooled. */
const SHUTDOWN_DRAIN_MS = 5_000

export interface AgentRun {
  agentId: string
  /** The traffic capture, unless capture.interface is 'none'. */
  traffic: TrafficCapture | undefined
  investigations: Investigations
  /** Resolves when the agent has stopped (after `signal` aborted and the spool was drained). */
  done: Promise<void>
}

function sleepUntil(time: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve()
    const timer = setTimeout(finish, Math.max(0, time - Date.now()))
    function finish() {
      clearTimeout(timer)
      signal.removeEventListener('abort', finish)
      resolve()
    }
    signal.addEventListener('abort', finish, { once: true })
  })
}

async function enrollWithRetry(
  config: AgentConfig,
  log: Logger,
  signal: AbortSignal,
): Promise<AgentCredential> {
  let delay = 1000
  for (;;) {
    try {
      return await ensureEnrolled(config)
    } catch (err) {
      if (!(err instanceof EnrollmentError) || !err.retryable || signal.aborted) throw err
      log.warn(
        { err: err.message, retry_in_ms: delay },
        'collector unreachable, will retry enrollment',
      )
      await sleepUntil(Date.now() + delay, signal)
      delay = Math.min(delay * 2, 60_000)
    }
  }
}

/**
 * Agent health as counters since the previous batch, so they sum correctly over time. The losses
 * come from the spool, which persists what it already reported: a loss is reported once, even
 * across restarts. Send failures are a rate and start again from 0 with the process.
 */
class HealthReport {
  #lastFailures = 0

  samples(spool: SpoolStats, unreported: LossCounters, failures: number): HostSample[] {
    const failed = Math.max(0, failures - this.#lastFailures)
    this.#lastFailures = failures
    const sample = (metric: HostSample['metric'], value: number): HostSample => ({
      metric,
      value,
      attributes: {},
    })
    return [
      sample('tally.agent.spool.depth', spool.depth),
      sample('tally.agent.spool.bytes', spool.bytes),
      sample('tally.agent.spool.in_memory', spool.inMemory),
      sample('tally.agent.spool.disk_full', spool.diskFull ? 1 : 0),
      sample('tally.agent.batches.dropped', unreported.dropped),
      sample('tally.agent.spool.corrupted', unreported.corrupted),
      sample('tally.agent.batches.rejected', unreported.rejected),
      sample('tally.agent.send.failures', failed),
    ]
  }
}

/** Drops are counted one by one but said in one line per reason and interval. */
class DropLog {
  readonly #pending = new Map<DropReason, number[]>()
  readonly log: Logger
  constructor(log: Logger) {
    this.log = log
  }

  add(reason: DropReason, seq: number): void {
    const seqs = this.#pending.get(reason) ?? []
    seqs.push(seq)
    this.#pending.set(reason, seqs)
  }

  flush(): void {
    const why: Record<DropReason, string> = {
      full: 'the spool is full (spool.max_batches or spool.max_bytes)',
      expired: 'not delivered within spool.max_age_days',
      'memory-full': 'the state directory is full and spool.memory_batches are already held',
    }
    for (const [reason, seqs] of this.#pending) {
      this.log.warn(
        { reason, dropped: seqs.length, first_seq: seqs[0], last_seq: seqs.at(-1) },
        `batches dropped: ${why[reason]}`,
      )
    }
    this.#pending.clear()
  }
}

export async function startAgent(
  config: AgentConfig,
  log: Logger,
  signal: AbortSignal,
): Promise<AgentRun> {
  mkdirSync(config.state_dir, { recursive: true, mode: 0o700 })
  // Before anything else (enrolling may wait long for the collector): a previous agent killed
  // outright may have left its tcpdumps running, a subject's capture among them.
  const childrenFile = join(config.state_dir, CAPTURE_CHILDREN_FILE)
  await stopLeftoverCaptures(childrenFile, {
    onStopped: (pid) =>
      log.warn({ pid }, `stopped a capture left by a previous agent (pid ${pid})`),
    onProblem: (problem) =>
      log.warn(
        { problem },
        'the list of capture processes is unreadable; a capture left by a previous agent, if any, ends at its next packet',
      ),
  })
  captureChildren.recordIn(childrenFile)
  // A new agent has no next-seq file yet; an enrolled one that lost it is worth a warning.
  const enrolledBefore = existsSync(credentialPath(config.state_dir))
  const credential = await enrollWithRetry(config, log, signal)
  log.info(
    { agent_id: credential.agent_id, host: credential.host, site: credential.site },
    'agent enrolled',
  )
  const drops = new DropLog(log)
  const spool = await Spool.open(join(config.state_dir, 'spool'), {
    maxRecords: config.spool.max_batches,
    maxBytes: config.spool.max_bytes,
    maxAgeMs: config.spool.max_age_days * 86_400_000,
    maxMemoryRecords: config.spool.memory_batches,
    // Where they always were, so an upgraded agent keeps its numbering.
    seqFile: join(config.state_dir, 'next-seq'),
    countersFile: join(config.state_dir, 'counters.json'),
    onEvent: (event) => {
      switch (event.kind) {
        case 'dropped':
          return drops.add(event.reason, event.seq)
        case 'corrupted':
          return log.warn(event, 'a spooled batch was damaged on disk; removed and counted')
        case 'disk-full':
          return log.error(
            {
              code: event.code,
              state_dir: config.state_dir,
              memory_batches: config.spool.memory_batches,
            },
            'the state directory refuses writes (disk full or read-only): batches are held in ' +
              'memory and sent from there; the oldest are dropped beyond spool.memory_batches',
          )
        case 'disk-recovered':
          return log.warn(
            { flushed: event.flushed },
            'the state directory takes writes again: spooling to disk resumed',
          )
      }
    },
  })
  drops.flush()
  if (spool.recovery.seq && (enrolledBefore || spool.stats().depth > 0)) {
    log.warn(
      { problem: spool.recovery.seq.problem, next_seq: spool.recovery.seq.next },
      'the next-seq file was missing or damaged: numbering resumes after the newest spooled ' +
        'batch, and the collector corrects it if it already holds later ones',
    )
  }
  if (spool.recovery.counters) {
    log.warn(
      { problem: spool.recovery.counters },
      'the counters file was damaged: the loss counters restart from 0',
    )
  }
  const intervalMs = (config.interval_seconds ?? credential.interval_seconds) * 1000
  const sender = new Sender({
    spool,
    deliver: httpDeliver({
      ingestUrl: new URL('/v1/ingest', config.collector.url).toString(),
      credential: credential.credential,
      timeoutMs: config.collector.timeout_seconds * 1000,
    }),
    nominalIntervalMs: intervalMs,
    onEvent: (event) => {
      switch (event.kind) {
        case 'acknowledged':
          return log.debug({ seq: event.seq }, 'batch acknowledged')
        case 'rejected':
          return log.error(event, 'collector rejected a batch; it was removed from the spool')
        case 'renumbered':
          return log.warn(
            event,
            'the collector already holds other batches under these numbers: the waiting ' +
              'batches were renumbered after its last seq and are sent again',
          )
        case 'repaired':
          return log.warn(
            event,
            'a spooled batch ended before it started (a clock step): its start was set to its ' +
              'end minus the interval',
          )
        case 'failure':
          return log.warn(event, 'batch delivery failed, will retry')
      }
    },
  })
  const host = new HostMetricsCollector()
  const healthReport = new HealthReport()
  // The packet path (tcpdump, decoding, aggregation) is loaded only by an agent that captures.
  const traffic =
    config.capture.interface === 'none'
      ? undefined
      : new (await import('./aggregate/live-traffic.ts')).TrafficCapture(config.capture, log)
  traffic?.start()
  const investigations = new Investigations({
    collectorUrl: config.collector.url,
    credential,
    stateDir: config.state_dir,
    interface: traffic?.interface ?? 'any',
    tcpdumpPath: config.capture.tcpdump_path,
    timeoutMs: config.collector.timeout_seconds * 1000,
    log,
  })

  /** Monotonic time of the previous boundary: the interval's length is measured from it. */
  let intervalMono = performance.now()
  let inventoryDue = 0
  /** Collects the interval that ends at `end` (wall clock) and puts its batch in the spool. */
  const spoolInterval = async (end: number): Promise<void> => {
    const nowMono = performance.now()
    const measuredMs = Math.max(1, Math.round(nowMono - intervalMono))
    intervalMono = nowMono
    const captured = await traffic?.drain(end)
    const samples = [...(await host.collect()), ...(captured?.samples ?? [])]
    for (const problem of host.lastErrors) log.warn({ problem }, 'host metric unavailable')
    const batch: Omit<HostBatch, 'seq'> = {
      version: PROTOCOL_VERSION,
      agent_id: credential.agent_id,
      agent_version: AGENT_VERSION,
      interval: { start: Math.max(0, end - measuredMs), end },
      samples,
      ...(captured === undefined ? {} : { usage: captured.usage }),
    }
    if (end >= inventoryDue) {
      batch.inventory = await host.inventory()
      inventoryDue = end + config.inventory_seconds * 1000
    }
    // The seq is taken inside the spool's write (and the health samples made there, with the
    // losses not yet reported): a crash before the write leaves no gap.
    const { seq, inMemory } = await spool.append((seq, unreported) => {
      const health = [
        ...healthReport.samples(spool.stats(), unreported, sender.failures),
        {
          metric: 'tally.agent.register.inconsistent' as const,
          value: investigations.registerInconsistent,
          attributes: {},
        },
      ]
      const complete: HostBatch = { ...batch, seq, samples: [...samples, ...health] }
      return gzipSync(JSON.stringify(complete))
    })
    drops.flush()
    sender.wake()
    log.info(
      {
        seq,
        samples: samples.length,
        spool_depth: spool.stats().depth,
        ...(inMemory ? { in_memory: true } : {}),
      },
      'batch spooled',
    )
  }

  const done = (async () => {
    const sending = sender.run(signal)
    await host.collect() // baseline for counters and CPU
    intervalMono = performance.now()
    while (!signal.aborted) {
      const boundary = Math.ceil((Date.now() + 1) / intervalMs) * intervalMs
      await sleepUntil(boundary, signal)
      if (signal.aborted) break
      await spoolInterval(boundary)
      // Grants are followed every interval: a closed case stops its capture within one.
      await investigations
        .interval(boundary)
        .catch((err: unknown) => log.error({ err }, 'investigations interval failed'))
    }
    // Stopping: what was counted since the last boundary goes out as a last, shorter batch.
    await traffic?.stop()
    await investigations
      .stop()
      .catch((err: unknown) => log.error({ err }, 'stopping subject captures failed'))
    await spoolInterval(Date.now())
    await sending
    await sender.drain(SHUTDOWN_DRAIN_MS)
    log.info({ spool_depth: spool.stats().depth }, 'agent stopped')
  })()
  return { agentId: credential.agent_id, traffic, investigations, done }
}
