/**
 * The collector's own counters in ClickHouse (`tally.collector_metrics`, migration 007), for the
 * Collector and Oversight dashboards: Grafana reads only ClickHouse, never a collector's
 * /metrics, and a fleet of collectors behind a load balancer writes one table.
 *
 * Every 10 s (on the clock's boundaries) it reads the Telemetry's instruments, through the same
 * Prometheus text /metrics serves, and writes what changed since its previous snapshot:
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
import type { Logger } from 'pino'
import type { Register, RegisterName, VerifyReport } from './register/register.ts'
import type { Store } from './store/client.ts'
import { insertRows } from './store/rows.ts'
import type { Telemetry } from './telemetry.ts'

export const COLLECTOR_METRICS_TABLE = 'tally.collector_metrics'
export const SNAPSHOT_INTERVAL_MS = 10_000
export const REGISTER_INTERVAL_MS = 60_000

/** The registers whose status is written where dashboards read it: ITSD's only (see above). */
export const RECORDED_REGISTERS: readonly RegisterName[] = ['itsd']

/** The quantiles of ingest latency written per snapshot. */
export const LATENCY_QUANTILES = [
  { metric: 'ingest.duration.p50', q: 0.5 },
  { metric: 'ingest.duration.p95', q: 0.95 },
] as const

export type CollectorMetricRow = {
  /** Seconds since the epoch. */
  ts: number
  instance: string
  metric: string
  labels: Record<string, string>
  value: number
}

export interface SelfMetricsOptions {
  store: Store
  telemetry: Pick<Telemetry, 'prometheus'>
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

/** One line of the Prometheus text format: a sample with its labels. */
export interface PromSample {
  name: string
  labels: Record<string, string>
  value: number
}

const SAMPLE_LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+-?\d+)?$/

/** Parses the exposition text (0.0.4): comments skipped, label values unescaped. */
export function parsePrometheusText(text: string): PromSample[] {
  const samples: PromSample[] = []
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const match = SAMPLE_LINE.exec(line)
    if (match === null) continue
    const [, name = '', labelText = '', valueText = ''] = match
    const value = parsePromValue(valueText)
    if (value === undefined) continue
    samples.push({ name, labels: parseLabels(labelText), value })
  }
  return samples
}

function parsePromValue(text: string): number | undefined {
  if (text === '+Inf') return Number.POSITIVE_INFINITY
  if (text === '-Inf') return Number.NEGATIVE_INFINITY
  const n = Number(text)
  return Number.isNaN(n) ? undefined : n
}

function parseLabels(text: string): Record<string, string> {
  const labels: Record<string, string> = {}
  let i = 0
  while (i < text.length) {
    const eq = text.indexOf('=', i)
    if (eq < 0 || text[eq + 1] !== '"') break
    const name = text.slice(i, eq).trim()
    let value = ''
    let j = eq + 2
    for (; j < text.length && text[j] !== '"'; j++) {
      const c = text[j]
      if (c === '\\' && j + 1 < text.length) {
        j++
        const e = text[j]
        value += e === 'n' ? '\n' : (e ?? '')
      } else {
        value += c
      }
    }
    labels[name] = value
    i = j + 1
    while (i < text.length && (text[i] === ',' || text[i] === ' ')) i++
  }
  return labels
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

const seriesKey = (name: string, labels: Record<string, string>): string =>
  `${name}${JSON.stringify(Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : 1)))}`

/** The ingest series written in every snapshot, moved or not. */
const STEADY = new Set([
  'tally_ingest_batches_total',
  'tally_ingest_samples_total',
  'tally_ingest_rejected_total',
  'tally_ingest_unavailable_total',
])

const METRIC_OF: Record<string, string> = {
  tally_ingest_batches_total: 'ingest.batches',
  tally_ingest_samples_total: 'ingest.samples',
  tally_ingest_rejected_total: 'ingest.rejected',
  tally_ingest_unavailable_total: 'ingest.unavailable',
  tally_ingest_duration_seconds_count: 'ingest.duration.count',
  tally_ingest_duration_seconds_sum: 'ingest.duration.sum',
  tally_http_requests_total: 'http.requests',
}

const DURATION_BUCKET = 'tally_ingest_duration_seconds_bucket'

export class SelfMetrics {
  readonly #store: Store
  readonly #telemetry: Pick<Telemetry, 'prometheus'>
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
    for (const s of parsePrometheusText(await this.#telemetry.prometheus())) {
      const key = seriesKey(s.name, s.labels)
      current.set(key, s.value)
      // A counter lower than its baseline restarted from zero: its value is the increase.
      const before = this.#baseline.get(key) ?? 0
      const delta = s.value >= before ? s.value - before : s.value
      if (s.name === DURATION_BUCKET) {
        const le = parsePromValue(s.labels.le ?? '')
        if (le !== undefined) buckets.set(le, (buckets.get(le) ?? 0) + delta)
        continue
      }
      const metric = METRIC_OF[s.name]
      if (metric === undefined) continue
      if (delta !== 0 || STEADY.has(s.name)) row(metric, s.labels, delta)
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
      await insertRows(this.#store, COLLECTOR_METRICS_TABLE, rows)
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
      await insertRows(this.#store, COLLECTOR_METRICS_TABLE, rows)
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
