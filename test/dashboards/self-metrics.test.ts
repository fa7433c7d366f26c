/** The collector's counters and the ITSD register's status, written where Grafana reads them. */
import { join } from 'node:path'
import pino from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createApp } from '../../collector/app.ts'
import { loadOrCreateSigningKey } from '../../collector/auth/signing-key.ts'
import { Register } from '../../collector/register/register.ts'
import { histogramQuantile, SelfMetrics } from '../../collector/self-metrics.ts'
import type { Store } from '../../collector/store/client.ts'
import { selectRows } from '../../collector/store/rows.ts'
import { createTelemetry, REJECT_REASONS } from '../../collector/telemetry.ts'
import { type Harness, openHarness } from '../collector/harness.ts'
import { parsePrometheusText } from '../collector/prometheus-text.ts'

describe('latency quantiles', () => {
  it('estimates quantiles from cumulative buckets as histogram_quantile does', () => {
    const buckets = [
      { le: 0.1, count: 5 },
      { le: 0.5, count: 10 },
      { le: Number.POSITIVE_INFINITY, count: 10 },
    ]
    expect(histogramQuantile(0.5, buckets)).toBeCloseTo(0.1)
    expect(histogramQuantile(0.95, buckets)).toBeCloseTo(0.46)
    expect(
      histogramQuantile(0.5, [
        { le: 0.1, count: 0 },
        { le: Number.POSITIVE_INFINITY, count: 4 },
      ]),
    ).toBe(0.1)
    expect(histogramQuantile(0.5, [{ le: Number.POSITIVE_INFINITY, count: 0 }])).toBeUndefined()
  })
})

interface Row {
  ts: number
  instance: string
  metric: string
  labels: Record<string, string>
  value: number
}

describe('SelfMetrics on the embedded engine', () => {
  let h: Harness
  let register: Register
  beforeAll(async () => {
    h = await openHarness()
    register = new Register(h.store, loadOrCreateSigningKey(join(h.dir, 'register.pem')).privateKey)
  })
  afterAll(async () => {
    await h?.close()
  })

  const rows = (instance: string) =>
    selectRows<Row>(
      h.store,
      `SELECT toUnixTimestamp(ts) AS ts, instance, metric, labels, value
       FROM tally.collector_metrics WHERE instance = {instance:String} ORDER BY ts, metric`,
      { instance },
    )
  const sum = (all: Row[], metric: string, labels: Record<string, string> = {}) =>
    all
      .filter((r) => r.metric === metric)
      .filter((r) => Object.entries(labels).every(([k, v]) => r.labels[k] === v))
      .reduce((n, r) => n + r.value, 0)

  it('writes increases per snapshot, the ingest series also at zero, latency quantiles', async () => {
    const telemetry = createTelemetry()
    let clock = Date.UTC(2030, 0, 1, 0, 0, 0)
    const metrics = new SelfMetrics({
      store: h.store,
      telemetry,
      instance: 'a',
      now: () => clock,
    })
    telemetry.batch('stored', 10)
    telemetry.batch('stored', 5)
    telemetry.batch('duplicate', 5)
    telemetry.rejected('schema')
    telemetry.unavailable()
    await metrics.snapshot()
    clock += 10_000
    telemetry.batch('stored', 1)
    await metrics.snapshot()
    const all = await rows('a')
    const first = all.filter((r) => r.ts === Date.UTC(2030, 0, 1) / 1000)
    const second = all.filter((r) => r.ts === Date.UTC(2030, 0, 1, 0, 0, 10) / 1000)
    expect(sum(first, 'ingest.batches', { outcome: 'stored' })).toBe(2)
    expect(sum(first, 'ingest.batches', { outcome: 'duplicate' })).toBe(1)
    expect(sum(first, 'ingest.samples')).toBe(15)
    expect(sum(first, 'ingest.rejected', { reason: 'schema' })).toBe(1)
    expect(sum(first, 'ingest.unavailable')).toBe(1)
    expect(sum(second, 'ingest.batches', { outcome: 'stored' })).toBe(1)
    expect(sum(second, 'ingest.samples')).toBe(1)
    // Every reason and outcome, moved or not, has its row in each snapshot.
    expect(
      second
        .filter((r) => r.metric === 'ingest.rejected')
        .map((r) => r.labels.reason)
        .sort(),
    ).toEqual([...REJECT_REASONS].sort())
    expect(sum(second, 'ingest.unavailable')).toBe(0)
    expect(all.every((r) => r.instance === 'a')).toBe(true)
  })

  it('turns the request histogram into count, sum, p50 and p95 per snapshot', async () => {
    const telemetry = createTelemetry()
    const app = createApp({
      store: h.store,
      config: h.config,
      logger: pino({ level: 'silent' }),
      signingKey: loadOrCreateSigningKey(join(h.dir, 'grant.pem')),
      telemetry,
    })
    for (let i = 0; i < 4; i++) {
      const res = await app.request('/v1/ingest', { method: 'POST', body: '{}' })
      expect(res.status).toBe(401)
    }
    const metrics = new SelfMetrics({ store: h.store, telemetry, instance: 'b' })
    await metrics.snapshot()
    const all = await rows('b')
    expect(sum(all, 'ingest.duration.count', { status: '401' })).toBe(4)
    expect(sum(all, 'ingest.duration.sum', { status: '401' })).toBeGreaterThan(0)
    const p50 = sum(all, 'ingest.duration.p50')
    const p95 = sum(all, 'ingest.duration.p95')
    expect(p50).toBeGreaterThan(0)
    expect(p95).toBeGreaterThanOrEqual(p50)
    expect(sum(all, 'http.requests', { route: '/v1/ingest', status: '401' })).toBe(4)
  })

  it('writes, from its metric reader, the rows the /metrics text of the same counters gives', async () => {
    const telemetry = createTelemetry()
    const app = createApp({
      store: h.store,
      config: h.config,
      logger: pino({ level: 'silent' }),
      signingKey: loadOrCreateSigningKey(join(h.dir, 'grant.pem')),
      telemetry,
    })
    await app.request('/v1/ingest', { method: 'POST', body: '{}' })
    await app.request('/v1/ingest', { method: 'POST', body: '{}' })
    await app.request('/v1/usage')
    await app.request('/v1/nothing-here', { method: 'POST', body: '{}' })
    telemetry.batch('stored', 7)
    telemetry.batch('duplicate', 3)
    telemetry.rejected('gzip')
    telemetry.unavailable()
    // What the rows must be, read from the exposition text as the collector once did.
    const expected: string[] = []
    const buckets: { le: number; count: number }[] = []
    const NAMES: Record<string, string> = {
      tally_ingest_batches_total: 'ingest.batches',
      tally_ingest_samples_total: 'ingest.samples',
      tally_ingest_rejected_total: 'ingest.rejected',
      tally_ingest_unavailable_total: 'ingest.unavailable',
      tally_ingest_duration_seconds_count: 'ingest.duration.count',
      tally_ingest_duration_seconds_sum: 'ingest.duration.sum',
      tally_http_requests_total: 'http.requests',
    }
    const line = (metric: string, labels: Record<string, string>, value: number) =>
      `${metric}${JSON.stringify(Object.entries(labels).sort())} ${value}`
    for (const sample of parsePrometheusText(await telemetry.prometheus())) {
      if (sample.name === 'tally_ingest_duration_seconds_bucket') {
        const le = sample.labels.le === '+Inf' ? Number.POSITIVE_INFINITY : Number(sample.labels.le)
        const bucket = buckets.find((b) => b.le === le)
        if (bucket === undefined) buckets.push({ le, count: sample.value })
        else bucket.count += sample.value
        continue
      }
      const metric = NAMES[sample.name]
      const steady = metric?.startsWith('ingest.') && !metric.startsWith('ingest.duration')
      if (metric !== undefined && (sample.value !== 0 || steady)) {
        expected.push(line(metric, sample.labels, sample.value))
      }
    }
    for (const [metric, q] of [
      ['ingest.duration.p50', 0.5],
      ['ingest.duration.p95', 0.95],
    ] as const) {
      expected.push(line(metric, {}, histogramQuantile(q, buckets) ?? Number.NaN))
    }
    const metrics = new SelfMetrics({ store: h.store, telemetry, instance: 'g' })
    await metrics.snapshot()
    const written = (await rows('g')).map((r) => line(r.metric, r.labels, r.value))
    expect(written.sort()).toEqual(expected.sort())
    expect(written.some((w) => w.startsWith('http.requests'))).toBe(true)
    expect(written.some((w) => w.startsWith('ingest.duration.count'))).toBe(true)
  })

  it('keeps what a failed write held for the next snapshot', async () => {
    const telemetry = createTelemetry()
    let down = true
    const flaky: Store = new Proxy(h.store, {
      get(target, prop, receiver) {
        if (prop === 'insert' && down) return () => Promise.reject(new Error('store is down'))
        const value: unknown = Reflect.get(target, prop, receiver)
        return typeof value === 'function' ? value.bind(target) : value
      },
    })
    const metrics = new SelfMetrics({ store: flaky, telemetry, instance: 'c' })
    telemetry.unavailable()
    telemetry.unavailable()
    await expect(metrics.snapshot()).rejects.toThrow(/down/)
    telemetry.unavailable()
    down = false
    await metrics.snapshot()
    expect(sum(await rows('c'), 'ingest.unavailable')).toBe(3)
  })

  it('snapshots on its timer and once more when stopped', async () => {
    const telemetry = createTelemetry()
    const metrics = new SelfMetrics({
      store: h.store,
      telemetry,
      instance: 'd',
      intervalMs: 100,
      registerIntervalMs: 60_000,
    })
    metrics.start()
    await new Promise((r) => setTimeout(r, 450))
    const ticks = new Set((await rows('d')).map((r) => r.ts)).size
    expect((await rows('d')).length).toBeGreaterThan(0)
    telemetry.batch('stored', 3)
    await metrics.stop()
    const after = await rows('d')
    expect(sum(after, 'ingest.samples')).toBe(3)
    await new Promise((r) => setTimeout(r, 250))
    expect((await rows('d')).length).toBe(after.length)
    expect(ticks).toBeGreaterThan(0)
  })

  it('stops within its bound when the store hangs', async () => {
    const hanging: Store = new Proxy(h.store, {
      get(target, prop, receiver) {
        if (prop === 'insert') return () => new Promise(() => undefined)
        const value: unknown = Reflect.get(target, prop, receiver)
        return typeof value === 'function' ? value.bind(target) : value
      },
    })
    const telemetry = createTelemetry()
    const metrics = new SelfMetrics({
      store: hanging,
      telemetry,
      instance: 'f',
      stopTimeoutMs: 100,
    })
    // The store never answers: stop() ends by its bound or not at all. Whether it ends is
    // raced against a generous deadline, not timed (a loaded machine stretches any duration).
    const started = performance.now()
    let deadline: NodeJS.Timeout | undefined
    const outcome = await Promise.race([
      metrics.stop().then(() => 'stopped' as const),
      new Promise<'hung'>((resolve) => {
        deadline = setTimeout(() => resolve('hung'), 30_000)
      }),
    ])
    clearTimeout(deadline)
    expect(outcome).toBe('stopped')
    // It did wait for the writes in flight, up to its bound.
    expect(performance.now() - started).toBeGreaterThanOrEqual(90)
  })

  it('records the ITSD register only: entries, checkpoint, verification', async () => {
    for (let k = 0; k < 3; k++) {
      await register.append({ register: 'itsd', kind: 'step', actor: 'u-1', details: { k } })
      await register.append({ register: 'oios', kind: 'step', actor: 'u-2', details: { k } })
    }
    await register.checkpoint('itsd')
    await register.checkpoint('oios')
    await register.append({ register: 'itsd', kind: 'step', actor: 'u-1', details: { k: 3 } })
    const metrics = new SelfMetrics({
      store: h.store,
      telemetry: createTelemetry(),
      register,
      instance: 'e',
      recheckMs: 10,
    })
    await metrics.recordRegisters()
    let all = await rows('e')
    expect(new Set(all.map((r) => r.labels.register))).toEqual(new Set(['itsd']))
    expect(sum(all, 'register.verify.ok')).toBe(1)
    expect(sum(all, 'register.verify.problems')).toBe(0)
    expect(sum(all, 'register.entries')).toBe(4)
    // Every append batch is signed: the latest checkpoint covers the fourth entry too.
    expect(sum(all, 'register.checkpoint.size')).toBe(4)
    expect(sum(all, 'register.checkpoint.age_seconds')).toBeGreaterThanOrEqual(0)

    // A forged second entry 2: the register no longer verifies, and the dashboard says so.
    await h.store.command({
      query: `INSERT INTO tally.register_entries (register, seq, ts, kind, actor, case_id, entry,
                prev_hash, hash, signature)
              SELECT register, seq, ts, kind, 'u-forger', case_id,
                replace(entry, '"u-1"', '"u-forger"'), prev_hash, hash, signature
              FROM tally.register_entries WHERE register = 'itsd' AND seq = 2`,
    })
    await metrics.recordRegisters()
    all = await rows('e')
    const verdicts = all.filter((r) => r.metric === 'register.verify.ok').map((r) => r.value)
    expect(verdicts.sort()).toEqual([0, 1])
    expect(
      (
        await selectRows<{ n: number }>(
          h.store,
          `SELECT count() AS n FROM tally.collector_metrics WHERE labels['register'] != 'itsd' AND mapContains(labels, 'register')`,
        )
      )[0]?.n,
    ).toBe(0)
  })
})
