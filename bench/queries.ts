/**
 * Read benchmark: every dashboard panel query, and the API's fleet and usage queries, over 24 h
 * and 30 days, on generated data (bench/queries-data.ts), with Grafana's macros expanded as
 * test/dashboards/macros.ts expands them. Prints per query p50/p95 (ms), rows returned and rows
 * the engine read; beside them, in the same run, references: the size of each table and the
 * time of reading it whole, and the queries as they were before the rollups (raw samples, every
 * batch record).
 *
 *   npm run bench:queries                        # 3 days x 60 hosts x 3 sites, quick
 *   npm run bench:queries -- --full              # 30 days x 200 hosts x 3 sites
 *   npm run bench:queries -- --days 7 --hosts 100 --runs 9 --keep /tmp/tally-bench-q
 *
 * One process: the embedded engine binds its data directory to it.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { openStore, type Store } from '../collector/store/client.ts'
import { listFleet } from '../collector/store/fleet.ts'
import { migrate } from '../collector/store/migrations.ts'
import { createUsageViews, queryUsage, toGrid } from '../collector/store/usage.ts'
import { DASHBOARDS } from '../dashboards/src/index.ts'
import {
  ALL,
  expandQuery,
  panelInterval,
  type TemplateVariable,
} from '../test/dashboards/macros.ts'
import { type DataShape, generate, SAMPLES_PER_BATCH } from './queries-data.ts'

const { values: args } = parseArgs({
  options: {
    full: { type: 'boolean', default: false },
    days: { type: 'string' },
    hosts: { type: 'string' },
    sites: { type: 'string', default: '3' },
    runs: { type: 'string', default: '7' },
    'replay-minutes': { type: 'string', default: '10' },
    'recent-step': { type: 'string', default: '60' },
    'older-step': { type: 'string' },
    keep: { type: 'string' },
    /** The data directory as an earlier run with --keep left it, schema included. */
    reuse: { type: 'boolean', default: false },
    only: { type: 'string' },
  },
})

const shape: DataShape = {
  days: Number(args.days ?? (args.full ? 30 : 3)),
  hosts: Number(args.hosts ?? (args.full ? 200 : 60)),
  sites: Number(args.sites),
  recentStepS: Number(args['recent-step']),
  olderStepS: Number(args['older-step'] ?? (args.full ? 600 : 300)),
  replayMinutes: Number(args['replay-minutes']),
  k: 5,
}
const RUNS = Number(args.runs)
const HOUR = 3_600_000
const RANGES = [
  { name: '24h', ms: 24 * HOUR },
  { name: '30d', ms: 30 * 24 * HOUR },
]
/** Grafana's maxDataPoints for a panel about 1,000 px wide, as the dashboards test uses. */
const MAX_POINTS = 1000

const log = (line: string) => process.stdout.write(`${line}\n`)

interface Measured {
  p50: number
  p95: number
  rows: number
  /** What the engine estimates it reads (EXPLAIN ESTIMATE): rows per table. */
  reads: string
}

async function measure(store: Store, sql: string): Promise<Measured> {
  const times: number[] = []
  let rows = 0
  for (let i = 0; i <= RUNS; i++) {
    const started = performance.now()
    const result = await store.exec({ query: `${sql}\nFORMAT JSONCompact` })
    const text = await streamText(result.stream)
    const elapsed = performance.now() - started
    if (i === 0) continue // warm-up: the first run loads marks and parts
    times.push(elapsed)
    rows = (JSON.parse(text) as { rows: number }).rows
  }
  return { ...percentiles(times), rows, reads: await estimate(store, sql) }
}

/** The tables a query reads and how many rows of each, as the engine plans it. */
async function estimate(store: Store, sql: string): Promise<string> {
  try {
    const rs = await store.query({ query: `EXPLAIN ESTIMATE ${sql}`, format: 'JSONEachRow' })
    const byTable = new Map<string, number>()
    for (const r of await rs.json<{ table: string; rows: number }>()) {
      byTable.set(r.table, (byTable.get(r.table) ?? 0) + Number(r.rows))
    }
    return [...byTable]
      .filter(([, n]) => n > 0)
      .map(([t, n]) => `${t} ${compact(n)}`)
      .join(', ')
  } catch {
    return '?'
  }
}

const compact = (n: number) =>
  n >= 1e6 ? `${(n / 1e6).toFixed(1)}M` : n >= 1e3 ? `${(n / 1e3).toFixed(0)}k` : String(n)

async function measureFn(run: () => Promise<number>): Promise<Measured> {
  const times: number[] = []
  let rows = 0
  for (let i = 0; i <= RUNS; i++) {
    const started = performance.now()
    rows = await run()
    if (i > 0) times.push(performance.now() - started)
  }
  return { ...percentiles(times), rows, reads: '' }
}

async function streamText(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = []
  for await (const chunk of stream) chunks.push(Buffer.from(chunk as Buffer))
  return Buffer.concat(chunks).toString('utf8')
}

/** Nearest-rank percentiles. */
function percentiles(times: number[]): { p50: number; p95: number } {
  const sorted = [...times].sort((a, b) => a - b)
  const at = (p: number) =>
    sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)] ?? 0
  return { p50: at(0.5), p95: at(0.95) }
}

const fmt = (n: number) => (Number.isNaN(n) ? '-' : Math.round(n).toLocaleString('en'))
const row = (name: string, range: string, m: Measured, over?: number) =>
  `${name.padEnd(62).slice(0, 62)} ${range.padEnd(4)} ${m.p50.toFixed(1).padStart(8)} ${m.p95.toFixed(1).padStart(8)} ${fmt(m.rows).padStart(9)}  ${over !== undefined && m.p95 > over ? 'MISS ' : ''}${m.reads}`
const HEADER = (first: string) =>
  `${first.padEnd(62)} ${'rng'.padEnd(4)} ${'p50 ms'.padStart(8)} ${'p95 ms'.padStart(8)} ${'rows'.padStart(9)}  reads (EXPLAIN ESTIMATE: rows per table)`

async function count(store: Store, sql: string): Promise<number> {
  const rs = await store.query({ query: sql, format: 'JSONEachRow' })
  const [first] = await rs.json<Record<string, number>>()
  return Number(Object.values(first ?? {})[0] ?? 0)
}

/** The agents of a data directory generated before (--keep DIR, then --reuse --keep DIR). */
async function enrolled(store: Store): Promise<{ agents: Array<{ site: string; host: string }> }> {
  const rs = await store.query({
    query: 'SELECT site, host FROM tally.agents FINAL ORDER BY site, host',
    format: 'JSONEachRow',
  })
  return { agents: await rs.json<{ site: string; host: string }>() }
}

/** Every query measured, and those whose p95 missed the 100 ms target. */
interface Tallies {
  all: Array<{ name: string; range: string; m: Measured }>
  misses: string[]
}

/** Reference: the tables' sizes, and the time to read one column of every row. */
async function measureTables(store: Store): Promise<void> {
  log('\nreference: the tables (rows, and p50/p95 of reading one column of every row)')
  log(HEADER('table'))
  for (const [table, column] of [
    ['tally.host_metrics', 'value'],
    ['tally.host_metrics_1m', 'sum'],
    ['tally.host_metrics_1h', 'sum'],
    ['tally.ingest_batches', 'samples'],
    ['tally.agent_last_batch', 'batches'],
    ['tally.ingest_site_1m', 'samples'],
    ['tally.usage_released', 'bytes'],
    ['tally.usage_released_1h', 'bytes'],
  ] as const) {
    const n = await count(store, `SELECT count() FROM ${table}`)
    const m = await measure(store, `SELECT sum(${column}) FROM ${table}`)
    log(row(`${table} (${fmt(n)} rows)`, '', m))
  }
}

/** A type, not an interface: the dashboards' JSON converts to it (an interface has no index). */
type DashboardPanel = {
  title: string
  interval?: string
  targets?: Array<{ refId: string; rawSql: string }>
}

/** One panel's query over each range, as Grafana would expand it. */
async function measurePanelTarget(
  store: Store,
  panel: DashboardPanel,
  target: { refId: string; rawSql: string },
  name: string,
  host: string,
  toMs: number,
  tallies: Tallies,
): Promise<void> {
  for (const range of RANGES) {
    const fromMs = toMs - range.ms
    const variables: TemplateVariable[] = [
      { name: 'datasource', value: 'tally-clickhouse' },
      { name: 'site', value: ALL, allValue: "''" },
      { name: 'host', value: host },
    ]
    const intervalMs = panelInterval(range.ms, MAX_POINTS, panel.interval)
    const sql = expandQuery(target.rawSql, { fromMs, toMs, intervalMs, variables })
    const m = await measure(store, sql)
    tallies.all.push({ name, range: range.name, m })
    log(row(name, range.name, m, 100))
    if (m.p95 > 100) tallies.misses.push(`${name} ${range.name}`)
  }
}

/** Every dashboard panel's queries (every site, host = the first host). */
async function measureDashboards(
  store: Store,
  host: string,
  toMs: number,
  tallies: Tallies,
): Promise<void> {
  log('\nqueries (Grafana: every site, host = the first host; p95 target 100 ms)')
  log(HEADER('dashboard / panel'))
  for (const { file, build } of DASHBOARDS) {
    const dashboard = build() as { panels: DashboardPanel[] }
    for (const panel of dashboard.panels) {
      for (const target of panel.targets ?? []) {
        const name = `${file.replace('.json', '')} / ${panel.title}${(panel.targets?.length ?? 0) > 1 ? ` (${target.refId})` : ''}`
        if (args.only !== undefined && !name.includes(args.only)) continue
        await measurePanelTarget(store, panel, target, name, host, toMs, tallies)
      }
    }
  }
}

/** The API's reads: the fleet, and usage over each range (one step, and whole hours). */
async function measureApi(store: Store, site: string, toMs: number, tallies: Tallies) {
  log('\nAPI queries')
  log(HEADER('route'))
  const apiCases: Array<[string, string, () => Promise<number>]> = [
    ['GET /v1/fleet', '', async () => (await listFleet(store)).length],
    [`GET /v1/fleet?site=${site}`, '', async () => (await listFleet(store, site)).length],
  ]
  for (const range of RANGES) {
    const { from, to } = toGrid(Math.floor((toMs - range.ms) / 1000), Math.floor(toMs / 1000))
    apiCases.push([
      'GET /v1/usage?by=service (one step, the default)',
      range.name,
      async () =>
        (await queryUsage(store, { site: '', from, to, by: 'service', step: to - from })).length,
    ])
    const hourFrom = Math.floor(from / 3600) * 3600
    const hourTo = Math.ceil(to / 3600) * 3600
    const step = range.ms > 2 * 24 * HOUR ? 3600 : 60
    apiCases.push([
      `GET /v1/usage?by=service&step=${step} (whole hours)`,
      range.name,
      async () =>
        (await queryUsage(store, { site: '', from: hourFrom, to: hourTo, by: 'service', step }))
          .length,
    ])
  }
  for (const [name, range, run] of apiCases) {
    const m = await measureFn(run)
    tallies.all.push({ name, range, m })
    log(row(name, range, m, 100))
    if (m.p95 > 100) tallies.misses.push(`${name} ${range}`)
  }
}

/** Reference: the queries as they were before the rollups (raw samples, every batch record). */
async function measureBefore(store: Store, toMs: number): Promise<void> {
  log('\nreference: the queries as they were before (raw samples, every batch record)')
  const ranges = RANGES.map((r) => ({ ...r, from: Math.floor((toMs - r.ms) / 1000) }))
  for (const r of ranges) {
    const window = `ts >= toDateTime(${r.from}) AND ts <= toDateTime(${Math.floor(toMs / 1000)})`
    const step = r.ms > 2 * 24 * HOUR ? 1800 : 60
    const before: Array<[string, string]> = [
      [
        'host-health / CPU busy by host, raw samples, every host',
        `SELECT toStartOfInterval(toDateTime(ts), INTERVAL ${step} second) AS time, concat(site, '/', host) AS agent, 1 - avg(value) AS busy
FROM tally.host_metrics WHERE ${window} AND metric = 'system.cpu.utilization' AND attributes['cpu.mode'] = 'idle'
GROUP BY time, agent ORDER BY time`,
      ],
      [
        'fleet / agents, from every batch record',
        `SELECT agent_id, max(received_at), argMax(agent_version, received_at), max(seq) FROM tally.ingest_batches GROUP BY agent_id`,
      ],
    ]
    for (const [name, sql] of before) log(row(name, r.name, await measure(store, sql)))
  }
}

async function main(): Promise<void> {
  const dir = args.keep ?? (await mkdtemp(join(tmpdir(), 'tally-bench-queries-')))
  const store = openStore({ dataDir: dir })
  try {
    if (!args.reuse) await migrate(store)
    log(
      args.reuse
        ? `reusing ${dir} as an earlier run left it`
        : `generating ${shape.days} d x ${shape.hosts} hosts x ${shape.sites} sites (${SAMPLES_PER_BATCH} series a host; samples every ${shape.recentStepS} s in the last day, ${shape.olderStepS} s before; the last ${shape.replayMinutes} min through POST /v1/ingest) in ${dir}`,
    )
    const generated = args.reuse ? await enrolled(store) : await generate(store, dir, shape, log)
    // The k views as this tree writes them (a kept directory may hold an older text).
    await createUsageViews(store, shape.k)
    // Parts as a running collector would have them a while after the writes.
    await store.command({ query: 'SYSTEM STOP MERGES' }).catch(() => undefined)
    await store.command({ query: 'SYSTEM START MERGES' }).catch(() => undefined)

    await measureTables(store)
    const site = generated.agents[0]?.site ?? ''
    const host = generated.agents[0]?.host ?? ''
    const toMs = Date.now()
    const tallies: Tallies = { all: [], misses: [] }
    await measureDashboards(store, host, toMs, tallies)
    await measureApi(store, site, toMs, tallies)
    await measureBefore(store, toMs)

    const { all, misses } = tallies
    const p95s = all.map((x) => x.m.p95).sort((a, b) => a - b)
    log(
      `\n${all.length} queries; median of their p95 ${percentiles(p95s).p50.toFixed(1)} ms, worst ${(p95s.at(-1) ?? 0).toFixed(1)} ms; ${misses.length === 0 ? 'every p95 under 100 ms' : `over 100 ms: ${misses.join('; ')}`}`,
    )
  } finally {
    await store.close()
    if (args.keep === undefined) await rm(dir, { recursive: true, force: true })
  }
}

await main()
