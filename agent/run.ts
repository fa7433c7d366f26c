/**
 * The agent: every interval, on the clock's boundaries, one batch of host metrics goes into the
 * spool; the sender drains the spool to the collector. Collecting never waits for sending, so a
 * collector outage only grows the spool.
 */
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { gzipSync } from 'node:zlib'
import type { Logger } from 'pino'
import { type HostBatch, type HostSample, PROTOCOL_VERSION } from '../protocol/v1.ts'
import { HostMetricsCollector } from './collect/host.ts'
import type { AgentConfig } from './config.ts'
import { type AgentCredential, EnrollmentError, ensureEnrolled } from './enroll.ts'
import { Investigations } from './investigations.ts'
import { SequenceCounter } from './sequence.ts'
import { httpDeliver, Sender } from './ship/sender.ts'
import { Spool, type SpoolStats } from './ship/spool.ts'
import { TrafficCapture } from './traffic-capture.ts'
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

/** Agent health as counters since the previous batch, so they sum correctly over time. */
class HealthReport {
  #last = { dropped: 0, corrupted: 0, failures: 0 }

  samples(spool: SpoolStats, failures: number): HostSample[] {
    const now = { dropped: spool.dropped, corrupted: spool.corrupted, failures }
    const delta = (k: keyof typeof now) => Math.max(0, now[k] - this.#last[k])
    const out: HostSample[] = [
      { metric: 'tally.agent.spool.depth', value: spool.depth, attributes: {} },
      { metric: 'tally.agent.spool.bytes', value: spool.bytes, attributes: {} },
      { metric: 'tally.agent.batches.dropped', value: delta('dropped'), attributes: {} },
      { metric: 'tally.agent.spool.corrupted', value: delta('corrupted'), attributes: {} },
      { metric: 'tally.agent.send.failures', value: delta('failures'), attributes: {} },
    ]
    this.#last = now
    return out
  }
}

export async function startAgent(
  config: AgentConfig,
  log: Logger,
  signal: AbortSignal,
): Promise<AgentRun> {
  mkdirSync(config.state_dir, { recursive: true, mode: 0o700 })
  const credential = await enrollWithRetry(config, log, signal)
  log.info(
    { agent_id: credential.agent_id, host: credential.host, site: credential.site },
    'agent enrolled',
  )
  const spool = await Spool.open(join(config.state_dir, 'spool'), {
    maxRecords: config.spool.max_batches,
    maxBytes: config.spool.max_bytes,
  })
  const sequence = new SequenceCounter(config.state_dir, (spool.maxSeq() ?? 0) + 1)
  const intervalMs = (config.interval_seconds ?? credential.interval_seconds) * 1000
  const sender = new Sender({
    spool,
    deliver: httpDeliver({
      ingestUrl: new URL('/v1/ingest', config.collector.url).toString(),
      credential: credential.credential,
      timeoutMs: config.collector.timeout_seconds * 1000,
    }),
    onEvent: (event) => {
      if (event.kind === 'acknowledged') log.debug({ seq: event.seq }, 'batch acknowledged')
      else if (event.kind === 'rejected')
        log.error(event, 'collector rejected a batch; it was removed from the spool')
      else log.warn(event, 'batch delivery failed, will retry')
    },
  })
  const host = new HostMetricsCollector()
  const health = new HealthReport()
  const traffic =
    config.capture.interface === 'none' ? undefined : new TrafficCapture(config.capture, log)
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

  let intervalStart = Date.now()
  let inventoryDue = 0
  /** Collects the interval that ends at `end` and puts its batch in the spool. */
  const spoolInterval = async (end: number): Promise<void> => {
    const captured = await traffic?.drain(end)
    const samples = [
      ...(await host.collect()),
      ...health.samples(spool.stats(), sender.failures),
      ...(captured?.samples ?? []),
    ]
    for (const problem of host.lastErrors) log.warn({ problem }, 'host metric unavailable')
    const batch: HostBatch = {
      version: PROTOCOL_VERSION,
      agent_id: credential.agent_id,
      seq: sequence.take(),
      agent_version: AGENT_VERSION,
      interval: { start: intervalStart, end },
      samples,
      ...(captured === undefined ? {} : { usage: captured.usage }),
    }
    if (end >= inventoryDue) {
      batch.inventory = await host.inventory()
      inventoryDue = end + config.inventory_seconds * 1000
    }
    await spool.append(batch.seq, gzipSync(JSON.stringify(batch)))
    sender.wake()
    log.info(
      { seq: batch.seq, samples: samples.length, spool_depth: spool.stats().depth },
      'batch spooled',
    )
    intervalStart = end
  }

  const done = (async () => {
    const sending = sender.run(signal)
    await host.collect() // baseline for counters and CPU
    intervalStart = Date.now()
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
    const now = Date.now()
    if (now > intervalStart) await spoolInterval(now)
    await sending
    await sender.drain(SHUTDOWN_DRAIN_MS)
    log.info({ spool_depth: spool.stats().depth }, 'agent stopped')
  })()
  return { agentId: credential.agent_id, traffic, investigations, done }
}
