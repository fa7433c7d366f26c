// biome-ignore-all lint/suspicious/noTemplateCurlyInString: Grafana variables, not JS placeholders
/**
 * The Grafana dashboards: every file parses and is what dashboards/src builds; panels, targets,
 * variables and provisioning are what the ClickHouse plugin (v4) and Grafana expect; and every
 * panel query, expanded as Grafana and the plugin expand it, runs on the embedded engine over
 * realistic data that went in through the real ingest path, returns rows, and for a time series
 * has its time column first and ascending. No query reads tier I or personal data.
 */
import { readdirSync, readFileSync } from 'node:fs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import YAML from 'yaml'
import { z } from 'zod'
import { createUsageViews, queryUsage, releaseUsage } from '../../collector/store/usage.ts'
import { DASHBOARDS } from '../../dashboards/src/index.ts'
import { RETENTION_DAYS, TOP_HOSTS } from '../../dashboards/src/rollups.ts'
import { type Harness, openHarness } from '../collector/harness.ts'
import { BATCHES, HOSTS, INTERVAL_MS, type LoadedData, loadRealisticData } from './data.ts'
import { ALL, expandQuery, panelInterval, type TemplateVariable } from './macros.ts'

const DIR = new URL('../../dashboards/', import.meta.url)
const PLUGIN = 'grafana-clickhouse-datasource'
const UID = 'tally-clickhouse'

const Target = z.looseObject({
  refId: z.string(),
  datasource: z.looseObject({ type: z.string(), uid: z.string() }),
  editorType: z.string(),
  format: z.number(),
  queryType: z.string(),
  pluginVersion: z.string(),
  rawSql: z.string(),
})
const Panel = z.looseObject({
  id: z.number(),
  type: z.string(),
  title: z.string(),
  gridPos: z.object({ x: z.number(), y: z.number(), w: z.number(), h: z.number() }),
  interval: z.string().optional(),
  datasource: z.looseObject({ type: z.string(), uid: z.string() }).optional(),
  targets: z.array(Target).optional(),
})
const Variable = z.looseObject({
  name: z.string(),
  type: z.string(),
  query: z.unknown(),
  definition: z.string().optional(),
  includeAll: z.boolean().optional(),
  allValue: z.string().optional(),
  multi: z.boolean().optional(),
  current: z.looseObject({ value: z.unknown().optional() }).optional(),
  datasource: z.looseObject({ type: z.string(), uid: z.string() }).optional(),
})
const Dashboard = z.looseObject({
  uid: z.string(),
  title: z.string(),
  schemaVersion: z.number(),
  tags: z.array(z.string()),
  panels: z.array(Panel),
  templating: z.object({ list: z.array(Variable) }),
})
type Dashboard = z.infer<typeof Dashboard>
type Panel = z.infer<typeof Panel>

const files = readdirSync(DIR)
  .filter((f) => f.endsWith('.json'))
  .sort()
const dashboards = files.map((file) => {
  const raw: unknown = JSON.parse(readFileSync(new URL(file, DIR), 'utf8'))
  return { file, raw, dashboard: Dashboard.parse(raw) }
})
const queryPanels = (d: Dashboard) => d.panels.filter((p) => (p.targets ?? []).length > 0)
const variable = (d: Dashboard, name: string) => d.templating.list.find((v) => v.name === name)

/** What a query must never read: tier I, and the tables and columns that hold personal data. */
const FORBIDDEN: Array<[RegExp, string]> = [
  [/tally_restricted/i, 'the restricted database (tier I)'],
  [/register_entries/i, 'register entries (actors, cases)'],
  [
    /\btally\.(users|enroll_tokens|enroll_token_uses|outbox|case_keys|oios_designations)\b/i,
    'control data',
  ],
  [/\bdoc\b/i, 'case documents'],
  [/\b(subject|token|credential_sha256|token_sha256)\b/i, 'grant subjects, tokens or credentials'],
  [
    /\busage_(contributions|cells|released\w*|release_marks|site(_1m|_1h)?)\b/i,
    'tier A without the k views',
  ],
]

describe('dashboard files', () => {
  it('are the five dashboards dashboards/src builds', () => {
    expect(files).toEqual(DASHBOARDS.map((d) => d.file).sort())
    for (const { file, build } of DASHBOARDS) {
      const found = dashboards.find((d) => d.file === file)
      expect(found?.raw, `${file} is stale: run node dashboards/build.ts`).toEqual(build())
    }
    expect(new Set(dashboards.map((d) => d.dashboard.uid)).size).toBe(dashboards.length)
  })

  it.each(dashboards)('$file: panel ids are unique and the grid is sane', ({ dashboard }) => {
    const ids = dashboard.panels.map((p) => p.id)
    expect(new Set(ids).size).toBe(ids.length)
    const placed: Panel[] = []
    for (const p of dashboard.panels) {
      const { x, y, w, h } = p.gridPos
      for (const n of [x, y, w, h]) expect(Number.isInteger(n)).toBe(true)
      expect(x).toBeGreaterThanOrEqual(0)
      expect(y).toBeGreaterThanOrEqual(0)
      expect(w).toBeGreaterThanOrEqual(1)
      expect(h).toBeGreaterThanOrEqual(1)
      expect(x + w, p.title).toBeLessThanOrEqual(24)
      if (p.type === 'row') expect([w, h, x]).toEqual([24, 1, 0])
      for (const q of placed) {
        const overlap =
          x < q.gridPos.x + q.gridPos.w &&
          q.gridPos.x < x + w &&
          y < q.gridPos.y + q.gridPos.h &&
          q.gridPos.y < y + h
        expect(overlap, `${p.title} overlaps ${q.title}`).toBe(false)
      }
      placed.push(p)
    }
    // Reading order: panels sorted by (y, x) are in id order.
    const sorted = [...dashboard.panels].sort(
      (a, b) => a.gridPos.y - b.gridPos.y || a.gridPos.x - b.gridPos.x,
    )
    expect(sorted.map((p) => p.id)).toEqual(ids)
  })

  it.each(dashboards)(
    '$file: targets are v4 SQL queries on the provisioned data source',
    ({ dashboard }) => {
      expect(dashboard.tags).toContain('tally')
      const ds = variable(dashboard, 'datasource')
      expect(ds?.type).toBe('datasource')
      expect(ds?.query).toBe(PLUGIN)
      expect(ds?.current?.value).toBe(UID)
      for (const p of dashboard.panels) {
        if (p.type === 'row' || p.type === 'text') {
          expect(p.targets ?? []).toEqual([])
          continue
        }
        expect(p.datasource, p.title).toEqual({ type: PLUGIN, uid: '${datasource}' })
        expect(p.targets?.length, p.title).toBeGreaterThan(0)
        for (const t of p.targets ?? []) {
          expect(t.datasource).toEqual({ type: PLUGIN, uid: '${datasource}' })
          expect(t.editorType).toBe('sql')
          expect(t.pluginVersion).toMatch(/^4\.\d+\.\d+$/)
          const timeSeries = p.type === 'timeseries'
          expect(t.format, p.title).toBe(timeSeries ? 0 : 1)
          expect(t.queryType).toBe(timeSeries ? 'timeseries' : 'table')
          expect(t.rawSql.trim()).not.toBe('')
        }
      }
    },
  )

  it.each(dashboards)('$file: no query reads tier I or personal data', ({ dashboard }) => {
    const queries = [
      ...queryPanels(dashboard).flatMap((p) => (p.targets ?? []).map((t) => t.rawSql)),
      ...dashboard.templating.list.map((v) => (typeof v.query === 'string' ? v.query : '')),
    ]
    for (const sql of queries) {
      for (const [pattern, what] of FORBIDDEN) expect(sql, `reads ${what}`).not.toMatch(pattern)
      // A read-only user in the readonly = 1 profile may not change settings.
      expect(sql).not.toMatch(/\bSETTINGS\b/i)
    }
  })

  it('site usage reads only the k views, with the plugin macros', () => {
    const usage = dashboards.find((d) => d.dashboard.uid === 'tally-site-usage')?.dashboard
    expect(usage).toBeDefined()
    for (const p of usage ? queryPanels(usage) : []) {
      for (const t of p.targets ?? []) {
        const tables = [...t.rawSql.matchAll(/\btally\.(\w+)/g)].map((m) => m[1])
        expect(tables.length, p.title).toBeGreaterThan(0)
        for (const table of tables) {
          expect(table).toMatch(/^usage_by_(service|peer_class|transport|ip_version|direction)$/)
        }
        expect(t.rawSql).toContain('site = ${site:singlequote}')
        expect(t.rawSql).toMatch(/\$__fromTime/)
        expect(t.rawSql).toMatch(/\$__toTime/)
      }
    }
  })

  it('site and host variables: All is the empty string, the host follows the site', () => {
    for (const { dashboard } of dashboards) {
      const site = variable(dashboard, 'site')
      if (site === undefined) continue
      expect(site.includeAll).toBe(true)
      expect(site.allValue).toBe("''")
      expect(site.multi).toBe(false)
    }
    const health = dashboards.find((d) => d.dashboard.uid === 'tally-host-health')?.dashboard
    const host = health === undefined ? undefined : variable(health, 'host')
    expect(host?.query).toMatch(/\$__conditionalAll\(site = \$\{site:singlequote\}, \$site\)/)
  })
})

describe('reads that stay fast as data grows', () => {
  const sqls = dashboards.flatMap(({ file, dashboard }) =>
    queryPanels(dashboard).flatMap((p) =>
      (p.targets ?? []).map((t) => ({ where: `${file} ${p.title}`, sql: t.rawSql })),
    ),
  )

  it('every query of raw host samples can read the per-minute and hourly rollups instead', () => {
    for (const { where, sql } of sqls) {
      if (!/\btally\.host_metrics\b(?!_)/.test(sql)) continue
      expect(sql, where).toMatch(/\btally\.host_metrics_1m\b/)
      expect(sql, where).toMatch(/\btally\.host_metrics_1h\b/)
    }
  })

  it('no query reads every batch record: agents and reporting come from their summaries', () => {
    for (const { where, sql } of sqls) expect(sql, where).not.toMatch(/\btally\.ingest_batches\b/)
  })
})

describe('provisioning', () => {
  const read = (path: string): unknown =>
    YAML.parse(readFileSync(new URL(`provisioning/${path}`, DIR), 'utf8'))

  it('provisions the ClickHouse data source with its uid, database and read-only user', () => {
    const Config = z.object({
      apiVersion: z.literal(1),
      datasources: z.array(
        z.looseObject({
          name: z.string(),
          type: z.string(),
          uid: z.string(),
          jsonData: z.looseObject({
            host: z.string(),
            port: z.number(),
            protocol: z.string(),
            username: z.string(),
            defaultDatabase: z.string(),
          }),
          secureJsonData: z.object({ password: z.string() }),
        }),
      ),
    })
    const [ds, ...rest] = Config.parse(read('datasources/clickhouse.yaml')).datasources
    expect(rest).toEqual([])
    expect(ds?.type).toBe(PLUGIN)
    expect(ds?.uid).toBe(UID)
    expect(ds?.jsonData).toMatchObject({
      host: 'clickhouse',
      port: 8123,
      protocol: 'http',
      username: 'grafana_ro',
      defaultDatabase: 'tally',
    })
    expect(ds?.secureJsonData.password).toBe('$GRAFANA_CLICKHOUSE_PASSWORD')
  })

  it('provisions the dashboards from their folder into Tally', () => {
    const Config = z.object({
      apiVersion: z.literal(1),
      providers: z.array(
        z.looseObject({
          folder: z.string(),
          type: z.literal('file'),
          options: z.looseObject({ path: z.string() }),
        }),
      ),
    })
    const [provider] = Config.parse(read('dashboards/tally.yaml')).providers
    expect(provider?.folder).toBe('Tally')
    expect(provider?.options.path).toBe('/var/lib/grafana/dashboards/tally')
  })
})

// On the engine --------------------------------------------------------------------------

interface Result {
  meta: Array<{ name: string; type: string }>
  data: Array<Record<string, unknown>>
}

let h: Harness
let loaded: LoadedData

async function run(sql: string): Promise<Result> {
  const rs = await h.store.query({ query: sql, format: 'JSON' })
  const { meta = [], data } = await rs.json<Record<string, unknown>>()
  return { meta, data }
}

const HOUR = 3_600_000
const DAY = 24 * HOUR
/** Time ranges ending now: their intervals reach the 1 min and 1 h rollups of the usage views. */
const RANGES = [
  { name: 'last hour', ms: HOUR },
  { name: 'last 7 days', ms: 7 * DAY },
  { name: 'last 90 days', ms: 90 * DAY },
]

type Selection = 'every site' | 'geneva'

/** The variables as Grafana would hold them, options read by the variables' own queries. */
async function variablesFor(d: Dashboard, selection: Selection, fromMs: number, toMs: number) {
  const vars: TemplateVariable[] = [{ name: 'datasource', value: UID }]
  const expand = (sql: string) =>
    expandQuery(sql, { fromMs, toMs, intervalMs: 60_000, variables: vars })
  const site = variable(d, 'site')
  if (site !== undefined && typeof site.query === 'string') {
    const options = (await run(expand(site.query))).data.map((r) => String(Object.values(r)[0]))
    expect(options).toEqual(['bangkok', 'geneva', 'nairobi'])
    vars.push({
      name: 'site',
      value: selection === 'geneva' ? 'geneva' : ALL,
      options,
      ...(site.allValue === undefined ? {} : { allValue: site.allValue }),
    })
  }
  const host = variable(d, 'host')
  if (host !== undefined && typeof host.query === 'string') {
    const options = (await run(expand(host.query))).data.map((r) => String(Object.values(r)[0]))
    const expected = HOSTS.filter((x) => selection !== 'geneva' || x.site === 'geneva')
      .map((x) => x.host)
      .sort()
    expect(options).toEqual(expected)
    // The host with this machine's real samples when the site has it, else the site's first.
    vars.push({
      name: 'host',
      value: options.includes('gva-ws-01') ? 'gva-ws-01' : String(options[0]),
    })
  }
  return vars
}

const isTime = (type: string) => /^(Nullable\()?DateTime/.test(type)
const isNumber = (type: string) => /^(Nullable\()?(U?Int|Float|Decimal)/.test(type)
const epoch = (v: unknown) => Date.parse(`${String(v).replace(' ', 'T')}Z`)

/** Runs a panel's query; a failure names the panel, selection and range, and shows the SQL. */
async function runQuery(sql: string, where: string): Promise<Result> {
  try {
    return await run(sql)
  } catch (err) {
    throw new Error(`${where} failed: ${(err as Error).message}\n${sql}`)
  }
}

/** A time series as Grafana reads one: time first and ascending, and a numeric column. */
function expectTimeSeries(result: Result, where: string): void {
  const [first, ...rest] = result.meta
  expect(first && isTime(first.type), `${where}: time first, not ${first?.type}`).toBe(true)
  expect(
    rest.some((c) => isNumber(c.type)),
    `${where}: a numeric column`,
  ).toBe(true)
  const times = result.data.map((r) => epoch(r[first?.name ?? '']))
  for (const [i, time] of times.entries()) {
    expect(Number.isFinite(time), where).toBe(true)
    if (i > 0) expect(time, `${where}: time ascending`).toBeGreaterThanOrEqual(times[i - 1] ?? 0)
  }
}

/**
 * Runs every query of a panel for every selection and range (or only the one given); returns the
 * results by case.
 */
async function runPanel(
  d: Dashboard,
  panel: Panel,
  only?: { selection: Selection; range: string },
): Promise<Map<string, Result>> {
  const results = new Map<string, Result>()
  const toMs = Date.now()
  for (const selection of ['every site', 'geneva'] as const) {
    if (only !== undefined && only.selection !== selection) continue
    for (const range of RANGES) {
      if (only !== undefined && only.range !== range.name) continue
      const fromMs = toMs - range.ms
      const variables = await variablesFor(d, selection, fromMs, toMs)
      const intervalMs = panelInterval(range.ms, 1000, panel.interval)
      for (const t of panel.targets ?? []) {
        const sql = expandQuery(t.rawSql, { fromMs, toMs, intervalMs, variables })
        const where = `${panel.title} (${t.refId}), ${selection}, ${range.name}`
        expect(sql, `${where}: left unexpanded`).not.toMatch(/\$\w|\$\{|\[\[/)
        const result = await runQuery(sql, where)
        expect(result.data.length, `${where} returned no rows\n${sql}`).toBeGreaterThan(0)
        if (t.format === 0) expectTimeSeries(result, where)
        results.set(`${selection}|${range.name}|${t.refId}`, result)
      }
    }
  }
  return results
}

describe('on the embedded engine, after realistic ingest', () => {
  beforeAll(async () => {
    h = await openHarness()
    await createUsageViews(h.store, 1)
    loaded = await loadRealisticData(h)
    // Every minute posted, released as the collector does once it closed (k = 1).
    await releaseUsage(h.store, { k: 1, releaseAfterSeconds: 600, now: loaded.lastEnd + 660_000 })
  }, 60_000)

  afterAll(async () => {
    await h?.close()
  })

  it('the data went in: batches, usage, counters, register status', async () => {
    const count = async (sql: string) => Number(Object.values((await run(sql)).data[0] ?? {})[0])
    expect(await count('SELECT count() FROM tally.ingest_batches')).toBe(loaded.storedBatches)
    expect(loaded.storedBatches).toBe(BATCHES * HOSTS.filter((x) => !x.silent).length)
    expect(
      await count(`SELECT count() FROM tally.collector_metrics WHERE labels['register'] = 'oios'`),
    ).toBe(0)
    expect(
      await count(
        `SELECT count() FROM tally.collector_metrics WHERE metric = 'register.verify.ok' AND value = 1`,
      ),
    ).toBe(2)
    expect(loaded.lastEnd % INTERVAL_MS).toBe(0)
  })

  for (const { file, dashboard } of dashboards) {
    describe(file, () => {
      for (const panel of queryPanels(dashboard)) {
        it(`${panel.id} ${panel.title}`, async () => {
          await runPanel(dashboard, panel)
        })
      }
    })
  }

  /** One number from a panel's first query, every site, the last hour. */
  async function value(uid: string, title: string, selection: Selection = 'every site') {
    const d = dashboards.find((x) => x.dashboard.uid === uid)?.dashboard
    const panel = d?.panels.find((p) => p.title === title)
    if (d === undefined || panel === undefined) throw new Error(`no panel ${uid}/${title}`)
    const results = await runPanel(d, panel, { selection, range: 'last hour' })
    const row = results.get(`${selection}|last hour|A`)?.data[0] ?? {}
    return Number(Object.values(row)[0])
  }

  it('fleet: five agents online, the silent one not', async () => {
    expect(await value('tally-fleet', 'Agents online')).toBe(5)
    expect(await value('tally-fleet', 'Agents offline')).toBe(1)
    expect(await value('tally-fleet', 'Agents online', 'geneva')).toBe(3)
    expect(await value('tally-fleet', 'Agents offline', 'geneva')).toBe(0)
  })

  it('site usage: the k views (k = 1) show every byte posted, over any range', async () => {
    const d = dashboards.find((x) => x.dashboard.uid === 'tally-site-usage')?.dashboard
    const top = d?.panels.find((p) => p.title === 'Top services')
    if (d === undefined || top === undefined) throw new Error('no Top services panel')
    for (const [key, result] of await runPanel(d, top)) {
      if (!key.startsWith('every site')) continue
      expect(
        result.data.reduce((n, r) => n + Number(r.bytes), 0),
        key,
      ).toBe(loaded.usageBytes)
      expect(new Set(result.data.map((r) => String(r.service)))).toEqual(loaded.services)
    }
  })

  it('collector: the counters the requests moved', async () => {
    expect(await value('tally-collector', 'Batches stored')).toBe(loaded.storedBatches)
    expect(await value('tally-collector', 'Duplicates recognised')).toBe(loaded.duplicates)
    expect(await value('tally-collector', 'Rejected (4xx)')).toBe(loaded.rejected)
    expect(await value('tally-collector', '503 answers')).toBe(loaded.unavailable)
    expect(await value('tally-collector', 'Mean ingest latency')).toBeGreaterThan(0)
  })

  it('oversight: ITSD cases, grants and register only; nothing of OIOS', async () => {
    expect(await value('tally-oversight', 'Open cases')).toBe(loaded.openCases)
    expect(await value('tally-oversight', 'Grants in force')).toBe(loaded.grantsInForce)
    expect(await value('tally-oversight', 'Register verifies')).toBe(1)
    // Every append batch is signed as it is written: a sound register has no entry unsigned.
    expect(await value('tally-oversight', 'Entries after the last checkpoint')).toBe(0)
    const d = dashboards.find((x) => x.dashboard.uid === 'tally-oversight')?.dashboard
    for (const panel of d ? queryPanels(d) : []) {
      for (const result of (await runPanel(d as Dashboard, panel)).values()) {
        // The only expired case is OIOS's; no result may show it, or a name.
        const text = JSON.stringify(result.data)
        expect(text).not.toMatch(/expired|oios|Jane|u-requester|u-approver/i)
      }
    }
  })

  describe('the table each step reads, and the hosts a panel shows', () => {
    const NOW = Date.now()
    const minuteAgo = (m: number) => Math.floor((NOW - m * 60_000) / 60_000) * 60
    const hourAgo = (h: number) => Math.floor((NOW - h * HOUR) / HOUR) * 3600
    /**
     * One rollup row of a series (no samples in the raw table: only that table has it). No
     * deduplication token: chDB keeps the last insert's for the session.
     */
    const rollupRow = (
      table: string,
      ts: number,
      host: string,
      metric: string,
      value: number,
      attributes: Record<string, string> = {},
    ) =>
      h.store.command({
        query: `INSERT INTO tally.${table} (ts, site, host, metric, series, attributes, samples, sum, min, max)
                SELECT toDateTime(${ts}), 'geneva', '${host}', '${metric}', cityHash64(m), m, 1, ${value}, ${value}, ${value}
                FROM (SELECT CAST(map(${Object.entries(attributes)
                  .map(([k, v]) => `'${k}', '${v}'`)
                  .join(', ')}), 'Map(String, String)') AS m)`,
        clickhouse_settings: { insert_deduplication_token: '' },
      })

    beforeAll(async () => {
      // Memory of one host: 0.111 in the per-minute table only (30 minutes and 20 days ago),
      // 0.777 in the hourly one only (the hour before this one).
      await rollupRow(
        'host_metrics_1m',
        minuteAgo(30),
        'zz-marker',
        'system.memory.utilization',
        0.111,
      )
      await rollupRow(
        'host_metrics_1m',
        minuteAgo(20 * 24 * 60),
        'zz-marker',
        'system.memory.utilization',
        0.111,
      )
      await rollupRow(
        'host_metrics_1h',
        hourAgo(1),
        'zz-marker',
        'system.memory.utilization',
        0.777,
      )
      // The hour of the older one in the hourly table too (the top hosts are ranked on it), with
      // another value.
      await rollupRow(
        'host_metrics_1h',
        Math.floor(minuteAgo(20 * 24 * 60) / 3600) * 3600,
        'zz-marker',
        'system.memory.utilization',
        0.999,
      )
      // Its spool: 111 in the per-minute table only, 777 in the hourly one only.
      await rollupRow('host_metrics_1m', minuteAgo(30), 'zz-marker', 'tally.agent.spool.depth', 111)
      await rollupRow('host_metrics_1h', hourAgo(1), 'zz-marker', 'tally.agent.spool.depth', 777)
      // Twelve idle hosts, busier and busier, in the hourly table only.
      for (let n = 1; n <= 12; n++) {
        await rollupRow(
          'host_metrics_1h',
          hourAgo(3),
          `zz-top-${String(n).padStart(2, '0')}`,
          'system.cpu.utilization',
          n / 100,
          { 'cpu.mode': 'idle' },
        )
      }
      // Site usage of another site in the hourly table only, released with 100 hosts.
      await h.store.command({
        query: `INSERT INTO tally.usage_released_1h
                SELECT toDateTime(${hourAgo(50)}), 'zurich', 0, 'inbound', 4, 'tcp', 'marker', 'internet', 3600000, 1000, 10, 100, uniqState(toString(number))
                FROM numbers(100)`,
        clickhouse_settings: { insert_deduplication_token: '' },
      })
    })

    const panelOf = (uid: string, title: string) => {
      const d = dashboards.find((x) => x.dashboard.uid === uid)?.dashboard
      const panel = d?.panels.find((p) => p.title === title)
      const sql = panel?.targets?.[0]?.rawSql
      if (panel === undefined || sql === undefined) throw new Error(`no panel ${uid}/${title}`)
      return { panel, sql }
    }
    /** A panel's first query over [from, to) with Grafana's interval for it (1,000 points). */
    const runOver = async (
      uid: string,
      title: string,
      fromMs: number,
      toMs: number,
      site = ALL,
    ) => {
      const { panel, sql } = panelOf(uid, title)
      const variables: TemplateVariable[] = [
        { name: 'datasource', value: UID },
        { name: 'site', value: site, allValue: "''" },
      ]
      const intervalMs = panelInterval(toMs - fromMs, 1000, panel.interval)
      return (await run(expandQuery(sql, { fromMs, toMs, intervalMs, variables }))).data
    }
    const marker = (rows: Array<Record<string, unknown>>) =>
      rows.filter((r) => r.agent === 'geneva/zz-marker').map((r) => Number(r.used))

    it('raw samples under a minute, the per-minute rollup under 30 minutes, the hourly above', async () => {
      const spool = (fromMs: number) =>
        runOver('tally-fleet', 'Spool backlog', fromMs, NOW).then((rows) =>
          rows.filter((r) => r.agent === 'geneva/zz-marker').map((r) => Number(r.batches)),
        )
      expect(await spool(NOW - HOUR)).toEqual([]) // 10 s steps: raw samples
      expect(await spool(NOW - 7 * DAY)).toEqual([111]) // 600 s: per minute
      expect(await spool(NOW - 30 * DAY)).toEqual([777]) // 1,800 s: hourly
      expect(await spool(NOW - 90 * DAY)).toEqual([777]) // 7,200 s: hourly
      // Memory used by host asks for a minute at least: the per-minute table for the last hour.
      const memory = await runOver('tally-host-health', 'Memory used by host', NOW - HOUR, NOW)
      expect(marker(memory)).toEqual([0.111])
    })

    it('the next coarser table when the range starts before a table keeps its rows', async () => {
      const from = minuteAgo(20 * 24 * 60) * 1000 - 30 * 60_000
      // An hour 20 days ago: 10 s steps, but raw samples are kept 14 days.
      const rows = await runOver('tally-host-health', 'Memory used by host', from, from + HOUR)
      expect(marker(rows)).toEqual([0.111])
    })

    it('rounds the step up to whole hours on the hourly table', async () => {
      const rows = await runOver('tally-host-health', 'Memory used by host', NOW - 30 * DAY, NOW)
      expect(rows.length).toBeGreaterThan(0)
      for (const r of rows) expect(epoch(r.time) % HOUR, String(r.time)).toBe(0)
    })

    it(`series over every host show the ${TOP_HOSTS} top hosts by the panel's measure`, async () => {
      const rows = await runOver('tally-host-health', 'CPU busy by host', NOW - 30 * DAY, NOW)
      const agents = new Set(rows.map((r) => String(r.agent)))
      expect(agents.size).toBe(TOP_HOSTS)
      // The least idle ones; this machine's own host may be busier still.
      for (let n = 1; n <= 9; n++) expect(agents).toContain(`geneva/zz-top-0${n}`)
      for (const idle of ['11', '12']) expect(agents).not.toContain(`geneva/zz-top-${idle}`)
    })

    it('site usage over 30 days asks the views for whole hours, so they read the hourly table', async () => {
      const rows = await runOver('tally-site-usage', 'By service', NOW - 30 * DAY, NOW, 'zurich')
      expect(rows.map((r) => r.series)).toEqual(['marker'])
      for (const r of rows) expect(epoch(r.time) % HOUR).toBe(0)
      // 3,600,000 bytes in an hour's step: 8,000 bits per second.
      expect(rows.map((r) => Number(r.bits_per_second))).toEqual([8000])
    })

    it('a rate from the per-minute rollup counts each minute once, in however many parts', async () => {
      // One minute of one interface in two parts the engine may not merge before the read.
      await h.store.command({ query: 'SYSTEM STOP MERGES tally.host_metrics_1m' })
      try {
        const iface = { 'network.interface.name': 'eth0', 'network.io.direction': 'receive' }
        for (const bytes of [600, 1200]) {
          await rollupRow(
            'host_metrics_1m',
            minuteAgo(90),
            'zz-rate',
            'system.network.io',
            bytes,
            iface,
          )
        }
        const variables: TemplateVariable[] = [
          { name: 'datasource', value: UID },
          { name: 'site', value: 'geneva' },
          { name: 'host', value: 'zz-rate' },
        ]
        const { panel, sql } = panelOf('tally-host-health', 'Interface throughput')
        const intervalMs = panelInterval(7 * DAY, 1000, panel.interval)
        expect(intervalMs).toBe(600_000) // the per-minute table
        const rows = (
          await run(expandQuery(sql, { fromMs: NOW - 7 * DAY, toMs: NOW, intervalMs, variables }))
        ).data
        // 1,800 bytes in the one minute with data: 240 bits per second.
        expect(rows.map((r) => [r.interface, Number(r.bits_per_second)])).toEqual([
          ['eth0 receive', 240],
        ])
      } finally {
        await h.store.command({ query: 'SYSTEM START MERGES tally.host_metrics_1m' })
      }
    })

    it('the API asked for one step: whole hours from the hourly table, the ends by the minute', async () => {
      const from = hourAgo(24 * 30) + 7 * 60 // not on the hour
      const edge = from + 60
      await h.store.command({
        query: `INSERT INTO tally.usage_released
                SELECT toDateTime(${edge}), 'zurich', 0, 'inbound', 4, 'tcp', 'edge', 'internet', 1000, 10, 1, 100, uniqState(toString(number))
                FROM numbers(100)`,
        clickhouse_settings: { insert_deduplication_token: '' },
      })
      const to = minuteAgo(0)
      const rows = await queryUsage(h.store, {
        site: 'zurich',
        from,
        to,
        by: 'service',
        step: to - from,
      })
      expect(rows.map((r) => [r.value, r.bytes, r.hosts]).sort()).toEqual([
        ['edge', 1000, 100],
        ['marker', 3_600_000, 100],
      ])
    })

    it('every time-series table has a TTL, and the panels know the host metrics ones', async () => {
      const tables = (
        await run(
          `SELECT name, engine_full FROM system.tables WHERE database = 'tally' AND engine LIKE '%MergeTree'`,
        )
      ).data as Array<{ name: string; engine_full: string }>
      const ttl = (name: string) =>
        tables.find((t) => t.name === name)?.engine_full.match(/TTL (.*?)(?: SETTINGS|$)/)?.[1]
      expect(ttl('host_metrics')).toBe(`toDateTime(ts) + toIntervalDay(${RETENTION_DAYS.raw})`)
      expect(ttl('host_metrics_1m')).toBe(`ts + toIntervalDay(${RETENTION_DAYS.minute})`)
      expect(ttl('host_metrics_1h')).toBe(`ts + toIntervalDay(${RETENTION_DAYS.hour})`)
      // Kept as long as what they describe: one row per agent, user, case, token...
      const bounded = new Set([
        'agents',
        'agent_last_batch',
        'host_inventory',
        'users',
        'enroll_tokens',
        'enroll_token_uses',
        'cases',
        'grants',
        'outbox',
        'oios_designations',
        'case_keys',
        'register_entries',
        'register_checkpoints',
        'schema_migrations',
        'role_proposals',
        'restricted_batches',
      ])
      for (const { name } of tables) {
        if (bounded.has(name)) continue
        expect(ttl(name), `${name} has no TTL`).toBeDefined()
      }
    })
  })
})
