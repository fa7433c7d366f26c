/**
 * What Grafana's read-only user (grafana_ro, through the role tally_reader) may read of tally.*:
 * every table the migrations leave is decided here, revoked or readable with the reason it holds
 * nothing of OIOS and no tier I value, so a table added later without a decision fails. The
 * decisions are checked against deploy/clickhouse/users.d/tally.xml as written, and as the
 * engine computes them from it (chDB cannot act as another user: it loads the file and says
 * what the role may do; engine-grants.ts).
 */
import { execFile } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'
import { SHARDING_KEYS } from '../../collector/store/cluster.ts'

/** Revoked whole: people, secrets, OIOS's administration, the fact of an investigation. */
const REVOKED = [
  'tally.users',
  'tally.enroll_tokens',
  'tally.outbox',
  'tally.case_keys',
  'tally.oios_designations',
  // Both sides' proposals, OIOS's included: who proposed which OIOS role for whom.
  'tally.role_proposals',
  'tally.restricted_batches',
  'tally.register_entries',
  'tally.register_checkpoints',
  'tally.usage_contributions',
  'tally.usage_cells',
  'tally.usage_cells_mv',
  'tally.usage_released',
  'tally.usage_released_1h',
  'tally.usage_released_1h_mv',
  'tally.usage_release_marks',
]

/** Readable in part: the columns revoked, and row policies that hide OIOS's rows. */
const COLUMNS_REVOKED: Record<string, string> = {
  'tally.cases': 'REVOKE SELECT(doc) ON tally.cases',
  'tally.grants': 'REVOKE SELECT(token, subject) ON tally.grants',
}

/** Readable, and why nothing of OIOS nor any tier I value is in them. */
const READABLE: Record<string, string> = {
  'tally.schema_migrations': 'which migrations ran',
  'tally.agents': 'the fleet (tier T): hosts, sites, versions',
  'tally.enroll_token_uses': 'which token enrolled which agent, no secret',
  'tally.host_metrics': 'tier T host metrics',
  'tally.host_metrics_1m': 'tier T rollup',
  'tally.host_metrics_1m_mv': 'its materialized view',
  'tally.host_metrics_1h': 'tier T rollup',
  'tally.host_metrics_1h_mv': 'its materialized view',
  'tally.host_inventory': 'tier T inventory',
  'tally.ingest_batches': 'host batch records (tier T only; tier I batches are restricted_batches)',
  'tally.agent_last_batch': "each agent's last host batch",
  'tally.agent_last_batch_mv': 'its materialized view',
  'tally.ingest_site_1m': 'host batches per site and minute',
  'tally.ingest_site_1m_mv': 'its materialized view',
  'tally.collector_metrics': 'the collector counters, the same for OIOS work and ITSD work',
}

const xml = readFileSync(
  new URL('../../deploy/clickhouse/users.d/tally.xml', import.meta.url),
  'utf8',
)
const readerQueries = (): string[] => {
  const reader = /<tally_reader>([\s\S]*?)<\/tally_reader>/.exec(xml)?.[1] ?? ''
  return [...reader.matchAll(/<query>([^<]*)<\/query>/g)].map((m) => m[1] as string)
}

/** Every table and materialized view of tally the migrations leave in place. */
function liveTables(): string[] {
  const dir = new URL('../../collector/store/migrations/', import.meta.url)
  const made = new Set<string>()
  const dropped = new Set<string>()
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.sql'))) {
    const sql = readFileSync(new URL(file, dir), 'utf8')
    for (const m of sql.matchAll(/CREATE (?:TABLE|MATERIALIZED VIEW) IF NOT EXISTS (tally\.\w+)/g))
      made.add(m[1] as string)
    for (const m of sql.matchAll(/DROP (?:TABLE|VIEW) IF EXISTS (tally\.\w+)/g))
      dropped.add(m[1] as string)
  }
  made.add('tally.schema_migrations')
  return [...made].filter((t) => !dropped.has(t)).sort()
}

describe("grafana_ro reads nothing of OIOS and no tier I value in tally's tables", () => {
  it('every table the migrations leave is decided: revoked, revoked in part, or readable', () => {
    const decided = new Set([...REVOKED, ...Object.keys(COLUMNS_REVOKED), ...Object.keys(READABLE)])
    expect(liveTables().filter((t) => !decided.has(t))).toEqual([])
  })

  it('the users file revokes each, its cluster shard too, and grants tally_restricted nothing', () => {
    const queries = readerQueries()
    expect(queries[0]).toBe('GRANT SELECT ON tally.*')
    for (const table of REVOKED) {
      expect(queries, table).toContain(`REVOKE SELECT ON ${table}`)
      if (Object.hasOwn(SHARDING_KEYS, table)) {
        expect(queries, table).toContain(`REVOKE SELECT ON ${table}_local`)
      }
    }
    for (const revoke of Object.values(COLUMNS_REVOKED)) expect(queries).toContain(revoke)
    for (const table of Object.keys(READABLE)) {
      expect(queries.filter((q) => q.includes(`${table} `) || q.endsWith(table))).toEqual([])
    }
    for (const query of queries) expect(query).not.toContain('tally_restricted')
    const user = /<users>[\s\S]*<grafana_ro>([\s\S]*?)<\/grafana_ro>/.exec(xml)?.[1] ?? ''
    const userGrants = [...user.matchAll(/<query>([^<]*)<\/query>/g)].map((m) => m[1])
    expect(userGrants).toEqual(['GRANT tally_reader'])
  })

  it('the engine, loading the users file, computes the same: role_proposals among the revoked', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tally-grafana-reader-'))
    try {
      const { stdout } = await promisify(execFile)(
        process.execPath,
        [new URL('./engine-grants.ts', import.meta.url).pathname, dir],
        {
          timeout: 50_000,
          killSignal: 'SIGKILL',
          env: { ...process.env, TALLY_GRAFANA_CH_PASSWORD: 'x', TALLY_COLLECTOR_CH_PASSWORD: 'y' },
        },
      )
      const grants = JSON.parse(stdout) as { grafana_ro: string[]; tally_reader: string[] }
      expect(grants.grafana_ro).toEqual(['GRANT tally_reader TO grafana_ro'])
      const reader = new Set(grants.tally_reader)
      expect(reader).toContain('GRANT SELECT ON tally.* TO tally_reader')
      for (const table of REVOKED) {
        expect(reader, table).toContain(`REVOKE SELECT ON ${table} FROM tally_reader`)
      }
      for (const line of reader) expect(line).not.toContain('tally_restricted')
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  }, 60_000)
})
