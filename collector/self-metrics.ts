/**
 * The collector's own counters in ClickHouse (`tally.collector_metrics`, migration 007), for the
 * Collector and Oversight dashboards: Grafana reads only ClickHouse, never a collector's
 * /metrics, and a fleet of collectors behind a load balancer writes one table.
 *
 * Every 10 s (on the clock's boundaries) it reads the Telemetry's instruments through a metric
 * reader of their own (the SDK's cumulative values, not the /metrics text) and writes what
 * changed since its previous snapshot:
 *   ingest.batches{outcome}        batches acknowledged: stored, duplicate (duplicates recognised)
 *   ingest.samples                 host samples stored (rows written to tally.host_metrics)
 *   ingest.rejected{reason}        ingest requests refused with a 4xx
 *   ingest.unavailable             ingest requests answered 503
 *   ingest.duration.count{status}  ingest requests answered, and
 *   ingest.duration.sum{status}    their summed time, in seconds (mean = sum / count)
 *   ingest.duration.p50, .p95      quantiles of the snapshot's requests, estimated from the
 *                                  histogram's buckets as Prometheus' histogram_quantile does
 *   http.requests{route,status}    every request, by route label (only series that moved): the
 *                                  template, or `cases` for every route of the case family, OIOS's
 *                                  included, so no row tells OIOS work from ITSD work (telemetry.ts)
 * The ingest series are written also when they did not move (as 0), so their panels have a
 * point in every interval. A snapshot that could not be written is not lost: the baseline moves
 * on only once a snapshot is stored, so the next one carries the increase (503s are counted
 * exactly when the store is failing).
 *
 * Every minute it also records the state of the ITSD register, from the Register's own checks:
 *   register.verify.ok{register}             1 when Register.verify found no problem, else 0
 *   register.verify.problems{register}       how many problems it found (no details)
 *   register.entries{register}               entries in the chain
 *   register.checkpoint.size{register}       entries covered by the latest signed checkpoint
 *   register.checkpoint.age_seconds{register} age of that checkpoint when it was looked at
 * Only the `itsd` register. The `oios` register is OIOS's own record (bulletin 9.2d), invisible
 * to ITSD roles: nothing of it, not even its size or whether it verifies, goes into a table the
 * dashboards read. OIOS checks its register through the API (`/v1/register/oios/verify`).
 */
import { hostname } from 'node:os'
import { DataPointType, type ResourceMetrics } from '@opentelemetry/sdk-metrics'
import type { Logger } from 'pino'
import type { Register, RegisterName, VerifyReport } from './register/register.ts'
import type { Store } from './store/client.ts'
import { type CollectorMetricRow, writeCollectorMetrics } from './store/collector-metrics.ts'
import type { Telemetry } from './telemetry.ts'

const SNAPSHOT_INTERVAL_MS = 10_000
const REGISTER_INTERVAL_MS = 60_000

/** The registers whose status is written where dashboards read it: ITSD's only (see above). */
const RECORDED_REGISTERS: readonly RegisterName[] = ['itsd']

/** The quantiles of ingest latency written per snapshot. */
const LATENCY_QUANTILES = [
  { metric: 'ingest.duration.p50', q: 0.5 },
  { metric: 'ingest.duration.p95', q: 0.95 },
] as const

export interface SelfMetricsOptions {
  store: Store
  telemetry: Pick<Telemetry, 'collect'>
  /** The register whose ITSD chain is verified every minute; without one, none is. */
  register?: Pick<Register, 'verify' | 'checkpoints'>
  /** Names this collector in the rows; the host name by default. Give it the port too. */
  instance?: string
  logger?: Logger
  intervalMs?: number
  registerIntervalMs?: number
  /** How long stop() waits for the writes in flight and the last snapshot (5 s). */
  stopTimeoutMs?: number
  /** Pause before a failed register check is repeated (1 s). */
  recheckMs?: number
  now?: () => number
}

/**
 * The q-quantile of a histogram given as cumulative bucket counts by upper bound, interpolated
 * linearly inside the bucket it falls in (as histogram_quantile); undefined without observations.
 */
export function histogramQuantile(
  q: number,
  buckets: ReadonlyArray<{ le: number; count: number }>,
): number | undefined {
  const sorted = [...buckets].sort((a, b) => a.le - b.le)
  const total = sorted[sorted.length - 1]?.count ?? 0
  if (!(total > 0)) return undefined
  const rank = q * total
  let lower = 0
  let below = 0
  for (const { le, count } of sorted) {
    if (count >= rank) {
      // Past the last finite bound there is nothing to interpolate towards.
      if (le === Number.POSITIVE_INFINITY) return lower
      const inBucket = count - below
      return inBucket > 0 ? lower + ((le - lower) * (rank - below)) / inBucket : le
    }
    lower = le
    below = count
  }
  return lower
}

/** One cumulative value of an instrument, or of one bucket of the request histogram. */
interface Reading {
  /** The row's metric, or undefined for a bucket (summed into the quantiles). */
  metric: string | undefined
  labels: Record<string, string>
  value: number
  /** A bucket's upper bound; its value is the count at or below it. */
  le?: number
  /** Written in every snapshot, moved or not. */
  steady: boolean
}

/** The counters written, by instrument; the ingest ones are steady (see the file comment). */
const COUNTERS: Record<string, { metric: string; steady: boolean }> = {
  tally_ingest_batches: { metric: 'ingest.batches', steady: true },
  tally_ingest_samples: { metric: 'ingest.samples', steady: true },
  tally_ingest_rejected: { metric: 'ingest.rejected', steady: true },
  tally_ingest_unavailable: { metric: 'ingest.unavailable', steady: true },
  tally_http_requests: { metric: 'http.requests', steady: false },
}

const DURATION = 'tally_ingest_duration_seconds'

const labelsOf = (attributes: Record<string, unknown>): Record<string, string> =>
  Object.fromEntries(Object.entries(attributes).map(([k, v]) => [k, String(v)]))

/** A histogram point as count, sum and cumulative buckets (the SDK counts each bucket alone). */
function histogramReadings(
  labels: Record<string, string>,
  point: { count: number; sum?: number; buckets: { boundaries: number[]; counts: number[] } },
): Reading[] {
  const readings: Reading[] = [
    { metric: 'ingest.duration.count', labels, value: point.count, steady: false },
    { metric: 'ingest.duration.sum', labels, value: point.sum ?? 0, steady: false },
  ]
  const { boundaries, counts } = point.buckets
  let atOrBelow = 0
  counts.forEach((count, i) => {
    atOrBelow += count
    const le = boundaries[i] ?? Number.POSITIVE_INFINITY
    readings.push({ metric: undefined, labels, value: atOrBelow, le, steady: false })
  })
  return readings
}

/** The instruments this file writes, as cumulative readings. */
function readingsOf(resourceMetrics: ResourceMetrics): Reading[] {
  const readings: Reading[] = []
  for (const { metrics } of resourceMetrics.scopeMetrics) {
    for (const m of metrics) {
      const counter = COUNTERS[m.descriptor.name]
      if (m.dataPointType === DataPointType.SUM && counter !== undefined) {
        for (const p of m.dataPoints) {
          readings.push({ ...counter, labels: labelsOf(p.attributes), value: p.value })
        }
      } else if (m.dataPointType === DataPointType.HISTOGRAM && m.descriptor.name === DURATION) {
        for (const p of m.dataPoints)
          readings.push(...histogramReadings(labelsOf(p.attributes), p.value))
      }
    }
  }
  return readings
}

const seriesKey = (r: Reading): string =>
  `${r.metric ?? `bucket:${r.le}`}${JSON.stringify(Object.entries(r.labels).sort(([a], [b]) => (a < b ? -1 : 1)))}`

export class SelfMetrics {
  readonly #store: Store
  readonly #telemetry: Pick<Telemetry, 'collect'>
  readonly #register: Pick<Register, 'verify' | 'checkpoints'> | undefined
  readonly #instance: string
  readonly #logger: Logger | undefined
  readonly #intervalMs: number
  readonly #registerIntervalMs: number
  readonly #stopTimeoutMs: number
  readonly #recheckMs: number
  readonly #now: () => number
  /** Cumulative values as of the last snapshot that was stored; empty at start (all zero). */
  #baseline = new Map<string, number>()
  #timers: NodeJS.Timeout[] = []
  #inFlight = new Set<Promise<unknown>>()
  #stopped = false

  constructor(options: SelfMetricsOptions) {
    this.#store = options.store
    this.#telemetry = options.telemetry
    this.#register = options.register
    this.#instance = options.instance ?? hostname()
    this.#logger = options.logger
    this.#intervalMs = options.intervalMs ?? SNAPSHOT_INTERVAL_MS
    this.#registerIntervalMs = options.registerIntervalMs ?? REGISTER_INTERVAL_MS
    this.#stopTimeoutMs = options.stopTimeoutMs ?? 5_000
    this.#recheckMs = options.recheckMs ?? 1_000
    this.#now = options.now ?? Date.now
  }

  /** The rows one snapshot would write now, and the cumulative values they were computed from. */
  async #counterRows(): Promise<{ rows: CollectorMetricRow[]; current: Map<string, number> }> {
    const ts = Math.floor(this.#now() / 1000)
    const current = new Map<string, number>()
    const rows: CollectorMetricRow[] = []
    const row = (metric: string, labels: Record<string, string>, value: number) =>
      rows.push({ ts, instance: this.#instance, metric, labels, value })
    const buckets = new Map<number, number>()
    for (const reading of readingsOf(await this.#telemetry.collect())) {
      const key = seriesKey(reading)
      current.set(key, reading.value)
      // A counter lower than its baseline restarted from zero: its value is the increase.
      const before = this.#baseline.get(key) ?? 0
      const delta = reading.value >= before ? reading.value - before : reading.value
      if (reading.metric === undefined) {
        const le = reading.le ?? Number.POSITIVE_INFINITY
        buckets.set(le, (buckets.get(le) ?? 0) + delta)
      } else if (delta !== 0 || reading.steady) {
        row(reading.metric, reading.labels, delta)
      }
    }
    const histogram = [...buckets].map(([le, count]) => ({ le, count }))
    for (const { metric, q } of LATENCY_QUANTILES) {
      const value = histogramQuantile(q, histogram)
      if (value !== undefined) row(metric, {}, value)
    }
    return { rows, current }
  }

  /** Writes the counters' increase since the last stored snapshot. Returns the rows written. */
  async snapshot(): Promise<number> {
    return this.#track(async () => {
      const { rows, current } = await this.#counterRows()
      await writeCollectorMetrics(this.#store, rows)
      this.#baseline = current
      return rows.length
    })
  }

  /**
   * Verifies a register. Register.verify reads the entries, then the checkpoints: one signed in
   * between covers entries it did not read, so a failed check is repeated once before it counts.
   */
  async #verify(register: Pick<Register, 'verify'>, name: RegisterName): Promise<VerifyReport> {
    const first = await register.verify(name)
    if (first.ok) return first
    await new Promise((resolve) => setTimeout(resolve, this.#recheckMs))
    return register.verify(name)
  }

  /** Writes the ITSD register's status (see the file comment). Returns the rows written. */
  async recordRegisters(): Promise<number> {
    const register = this.#register
    if (register === undefined) return 0
    return this.#track(async () => {
      const rows: CollectorMetricRow[] = []
      for (const name of RECORDED_REGISTERS) {
        const report = await this.#verify(register, name)
        const checkpoints = await register.checkpoints(name)
        const now = this.#now()
        const ts = Math.floor(now / 1000)
        const labels = { register: name }
        const row = (metric: string, value: number) =>
          rows.push({ ts, instance: this.#instance, metric, labels, value })
        row('register.verify.ok', report.ok ? 1 : 0)
        row('register.verify.problems', report.problems.length)
        row('register.entries', report.size)
        const latest = checkpoints.reduce<(typeof checkpoints)[number] | undefined>(
          (a, b) => (a === undefined || b.size > a.size ? b : a),
          undefined,
        )
        if (latest !== undefined) {
          row('register.checkpoint.size', latest.size)
          row('register.checkpoint.age_seconds', Math.max(0, (now - Date.parse(latest.ts)) / 1000))
        }
      }
      await writeCollectorMetrics(this.#store, rows)
      return rows.length
    })
  }

  #track<T>(work: () => Promise<T>): Promise<T> {
    const p = work()
    this.#inFlight.add(p)
    const done = () => this.#inFlight.delete(p)
    p.then(done, done)
    return p
  }

  /** Snapshots on the clock's 10 s boundaries, the register every minute (and once soon). */
  start(): void {
    if (this.#stopped || this.#timers.length > 0) return
    const every = (ms: number, firstMs: number, work: () => Promise<unknown>, what: string) => {
      let busy = false
      const run = () => {
        // A slow store must not pile snapshots up: skip the tick, the next one carries it.
        if (busy || this.#stopped) return
        busy = true
        work()
          .catch((err: unknown) => this.#logger?.warn({ err }, `${what} not written`))
          .finally(() => {
            busy = false
          })
      }
      const first = setTimeout(() => {
        run()
        const repeat = setInterval(run, ms)
        repeat.unref()
        this.#timers.push(repeat)
      }, firstMs)
      first.unref()
      this.#timers.push(first)
    }
    const toBoundary = this.#intervalMs - (this.#now() % this.#intervalMs)
    every(this.#intervalMs, toBoundary, () => this.snapshot(), 'collector metrics')
    every(
      this.#registerIntervalMs,
      Math.min(toBoundary + this.#intervalMs / 2, this.#registerIntervalMs),
      () => this.recordRegisters(),
      'register status',
    )
  }

  /**
   * Stops the timers, waits for writes in flight and writes a last snapshot, so what the final
   * requests counted is kept; bounded (stopTimeoutMs), so a store that is down cannot hold up a
   * shutdown. Call it before closing the store.
   */
  async stop(): Promise<void> {
    if (this.#stopped) return
    this.#stopped = true
    for (const t of this.#timers) clearTimeout(t)
    this.#timers = []
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), this.#stopTimeoutMs)
    })
    const last = (async () => {
      await Promise.allSettled([...this.#inFlight])
      await this.snapshot()
    })().catch((err: unknown) => {
      this.#logger?.warn({ err }, 'last collector metrics not written')
    })
    try {
      if ((await Promise.race([last, timeout])) === 'timeout') {
        this.#logger?.warn('last collector metrics not written in time')
      }
    } finally {
      clearTimeout(timer)
    }
  }
}

/** A started SelfMetrics; `stop()` it before the store closes. */
export function startSelfMetrics(options: SelfMetricsOptions): SelfMetrics {
  const metrics = new SelfMetrics(options)
  metrics.start()
  return metrics
}
