/**
 * The migrations rendered for a ClickHouse cluster (deploy/cluster/: 2 shards x 2 replicas, 3
 * Keeper nodes): every statement `ON CLUSTER`, every MergeTree table Replicated, time series
 * sharded behind Distributed tables that keep the names the collector's SQL uses.
 *
 * Two placements, decided per table below (an unclassified table is an error, so a new migration
 * has to choose):
 *
 * - **global**: control data (agents, users, tokens, cases, grants, outbox, the register, keys,
 *   schema_migrations). Every node holds a full replica, all under one Keeper path without
 *   `{shard}`. Reads stay local and whole, so `FINAL`, point lookups, the fleet's joins and
 *   `ALTER ... UPDATE` (case keys) work unchanged; a Distributed table over one shard would
 *   refuse mutations and, inserting in the background, would break read-after-write for the
 *   case workflow and the register's fail-closed rule. These tables are small.
 * - **sharded**: time series and tier I. A `<name>_local` Replicated table on every shard and a
 *   `Distributed(cluster, db, <name>_local, key)` table under the original name. The key keeps
 *   whatever must meet in one merge on one shard: a host's series, a site's usage, an agent's
 *   batches, a case's records (so `FINAL` and a purge by case partition stay per shard).
 *
 * Materialized views read the `_local` source and write the `_local` target, so each shard rolls
 * up what it received. Deduplication: `non_replicated_deduplication_window` has no meaning on a
 * Replicated table and is dropped; Replicated tables deduplicate inserts natively by the
 * collector's `insert_deduplication_token` within `replicated_deduplication_window` (ClickHouse's
 * default: 10000 blocks, 1 h). A table that had no window on one server gets
 * `replicated_deduplication_window = 0`, so it keeps every insert there too (the register keeps a
 * second row with the same seq).
 *
 * The parser relies on our migration files' formatting: one statement each, `CREATE TABLE name`
 * followed by a column list or `AS other`, an `ENGINE = X[(args)]` clause, then the table's
 * clauses with `SETTINGS` last.
 */
import { z } from 'zod'
import type { Store } from './client.ts'
import { type Migration, MigrationError, migrate, readMigrations } from './migrations.ts'
import { selectParsed } from './rows.ts'

export class ClusterRenderError extends Error {
  override name = 'ClusterRenderError'
}

/** Keeper path of a sharded table's replicas, and of a global table's (one path, every node). */
const SHARDED_PATH = '/clickhouse/tables/{shard}/{database}/{table}'
const GLOBAL_PATH = '/clickhouse/tables/all/{database}/{table}'
const REPLICA = '{replica}'

/** Control tables: a full replica on every node. */
export const GLOBAL_TABLES: ReadonlySet<string> = new Set([
  'tally.schema_migrations',
  'tally.agents',
  'tally.enroll_tokens',
  'tally.enroll_token_uses',
  'tally.users',
  'tally.register_entries',
  'tally.register_checkpoints',
  'tally.cases',
  'tally.grants',
  'tally.outbox',
  'tally.oios_designations',
  'tally.case_keys',
  'tally.usage_release_marks',
  'tally.role_proposals',
])

/** Sharded tables and their sharding keys. Null tables (usage_contributions) are sharded too. */
export const SHARDING_KEYS: Readonly<Record<string, string>> = {
  'tally.ingest_batches': 'cityHash64(agent_id)',
  'tally.host_metrics': 'cityHash64(site, host)',
  'tally.host_metrics_1m': 'cityHash64(site, host)',
  'tally.host_metrics_1h': 'cityHash64(site, host)',
  'tally.agent_last_batch': 'cityHash64(agent_id)',
  'tally.ingest_site_1m': 'cityHash64(site)',
  'tally.host_inventory': 'cityHash64(agent_id)',
  'tally.usage_contributions': 'cityHash64(site)',
  'tally.usage_site': 'cityHash64(site)',
  'tally.usage_site_1m': 'cityHash64(site)',
  'tally.usage_site_1h': 'cityHash64(site)',
  'tally.usage_cells': 'cityHash64(site)',
  'tally.usage_released': 'cityHash64(site)',
  'tally.usage_released_1h': 'cityHash64(site)',
  'tally.restricted_batches': 'cityHash64(agent_id)',
  'tally.collector_metrics': 'cityHash64(instance)',
  'tally_restricted.flows': 'cityHash64(case_id)',
  'tally_restricted.dns': 'cityHash64(case_id)',
  'tally_restricted.web': 'cityHash64(case_id)',
  'tally_restricted.pcap_segments': 'cityHash64(case_id)',
  'tally_restricted.exports': 'cityHash64(case_id)',
}

export const localName = (table: string): string => `${table}_local`

const isSharded = (table: string): boolean => Object.hasOwn(SHARDING_KEYS, table)

function placementOf(table: string): 'global' | 'sharded' {
  if (GLOBAL_TABLES.has(table)) return 'global'
  if (isSharded(table)) return 'sharded'
  throw new ClusterRenderError(
    `table ${table} is neither global nor sharded: add it to GLOBAL_TABLES or SHARDING_KEYS in ` +
      'collector/store/cluster.ts',
  )
}

export function checkClusterName(cluster: string): string {
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(cluster)) {
    throw new ClusterRenderError(
      `cluster name ${JSON.stringify(cluster)}: use letters, digits and underscores (as in remote_servers)`,
    )
  }
  return cluster
}

const NAME = '([A-Za-z_][A-Za-z0-9_]*\\.[A-Za-z_][A-Za-z0-9_]*)'
const CREATE_DATABASE = /^CREATE DATABASE (IF NOT EXISTS )?([A-Za-z_][A-Za-z0-9_]*)$/
const CREATE_TABLE = new RegExp(`^CREATE TABLE (IF NOT EXISTS )?${NAME}(\\s[\\s\\S]*)$`)
const CREATE_MV = new RegExp(
  `^CREATE MATERIALIZED VIEW (IF NOT EXISTS )?${NAME} TO ${NAME} AS(\\s[\\s\\S]*)$`,
)
const CREATE_VIEW = new RegExp(`^CREATE (OR REPLACE )?VIEW (IF NOT EXISTS )?${NAME}(\\s[\\s\\S]*)$`)
const ALTER_TABLE = new RegExp(`^ALTER TABLE ${NAME}(\\s[\\s\\S]*)$`)
const DROP_TABLE = new RegExp(`^DROP TABLE IF EXISTS ${NAME}( SYNC)?$`)
const DROP_VIEW = new RegExp(`^DROP VIEW IF EXISTS ${NAME}$`)
const INSERT_SELECT = new RegExp(`^INSERT INTO ${NAME} \\([^)]*\\)\\s+SELECT\\s`)
const ENGINE = /^ENGINE\s*=\s*([A-Za-z]+)(?:\(([^()]*)\))?[ \t]*$/m
const MERGE_TREE = /^(|Replacing|Aggregating|Summing|Collapsing|VersionedCollapsing)MergeTree$/
const SETTINGS = /\n?SETTINGS[ \t]+([^\n]+)\s*$/
/** Column changes a Distributed table must follow; other ALTERs concern the stored data only. */
const COLUMN_ALTER = /^\s*(ADD|DROP|MODIFY|RENAME|COMMENT) COLUMN\b/i

/** Replaces references to sharded tables by their `_local` tables. */
function toLocalReferences(sql: string): string {
  return sql.replace(
    /(?<![\w.`])([A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*)(?![\w.(`])/g,
    (name: string) => (isSharded(name) ? localName(name) : name),
  )
}

/** The tables of known databases a SELECT reads. */
function referencedTables(sql: string, databases: ReadonlySet<string>): string[] {
  const found = new Set<string>()
  for (const match of sql.matchAll(
    /(?<![\w.`])([A-Za-z_][A-Za-z0-9_]*)\.([A-Za-z_][A-Za-z0-9_]*)/g,
  )) {
    if (databases.has(match[1] as string)) found.add(match[0])
  }
  return [...found]
}

/**
 * The table's clauses with its SETTINGS for a Replicated engine: the non-replicated window goes
 * (the replicated default window applies); a table without one gets none.
 */
function renderSettings(rest: string): string {
  const match = SETTINGS.exec(rest)
  const items = match === null ? [] : (match[1] as string).split(',').map((s) => s.trim())
  const isWindow = (item: string) =>
    item.split('=')[0]?.trim() === 'non_replicated_deduplication_window'
  const kept = items.filter((item) => !isWindow(item))
  if (!items.some(isWindow)) kept.push('replicated_deduplication_window = 0')
  const clauses = match === null ? rest.trimEnd() : rest.slice(0, match.index).trimEnd()
  return kept.length === 0 ? clauses : `${clauses}\nSETTINGS ${kept.join(', ')}`
}

function renderCreateTable(match: RegExpExecArray, cluster: string, statement: string): string[] {
  const ifNotExists = match[1] ?? ''
  const table = match[2] as string
  const body = match[3] as string
  const engine = ENGINE.exec(body)
  if (engine === null) throw new ClusterRenderError(`no ENGINE clause in: ${head(statement)}`)
  const engineName = engine[1] as string
  const engineArgs = engine[2]
  const structure = body.slice(0, engine.index).trim()
  const rest = body.slice(engine.index + engine[0].length)
  const placement = placementOf(table)
  const target = placement === 'sharded' ? localName(table) : table
  let shape: string
  if (structure.startsWith('(')) shape = `\n${structure}`
  else if (/^AS [\w.]+$/.test(structure)) shape = ` ${toLocalReferences(structure)}`
  else throw new ClusterRenderError(`expected a column list or AS in: ${head(statement)}`)

  let local: string
  if (MERGE_TREE.test(engineName)) {
    const path = placement === 'sharded' ? SHARDED_PATH : GLOBAL_PATH
    const args = [`'${path}'`, `'${REPLICA}'`, ...(engineArgs ? [engineArgs] : [])].join(', ')
    local =
      `CREATE TABLE ${ifNotExists}${target} ON CLUSTER ${cluster}${shape}\n` +
      `ENGINE = Replicated${engineName}(${args})${renderSettings(rest)}`
  } else if (engineName === 'Null' && placement === 'sharded') {
    if (rest.trim() !== '')
      throw new ClusterRenderError(`a Null table with clauses: ${head(statement)}`)
    local = `CREATE TABLE ${ifNotExists}${target} ON CLUSTER ${cluster}${shape}\nENGINE = Null`
  } else {
    throw new ClusterRenderError(
      `engine ${engineName} of ${table} has no cluster rendering (MergeTree family or a sharded Null table)`,
    )
  }
  if (placement === 'global') return [local]
  const [db, name] = table.split('.') as [string, string]
  const distributed =
    `CREATE TABLE ${ifNotExists}${table} ON CLUSTER ${cluster} AS ${target}\n` +
    `ENGINE = Distributed('${cluster}', '${db}', '${localName(name)}', ${SHARDING_KEYS[table]})`
  return [local, distributed]
}

function renderMaterializedView(
  match: RegExpExecArray,
  cluster: string,
  databases: ReadonlySet<string>,
  statement: string,
): string {
  const ifNotExists = match[1] ?? ''
  const view = match[2] as string
  const target = match[3] as string
  const select = match[4] as string
  const sources = referencedTables(select, databases)
  const targetPlacement = placementOf(target)
  for (const source of sources) {
    if (placementOf(source) !== targetPlacement) {
      throw new ClusterRenderError(
        `materialized view ${view} reads ${source} and writes ${target}: both must be sharded or both global`,
      )
    }
  }
  if (sources.length === 0) throw new ClusterRenderError(`no source table in: ${head(statement)}`)
  const to = targetPlacement === 'sharded' ? localName(target) : target
  return `CREATE MATERIALIZED VIEW ${ifNotExists}${view} ON CLUSTER ${cluster} TO ${to} AS${toLocalReferences(select)}`
}

const head = (statement: string): string => statement.split('\n')[0] ?? statement

/** One statement of our migrations, for a cluster. Databases: those the migrations create. */
export function renderClusterStatement(
  statement: string,
  cluster: string,
  databases: ReadonlySet<string> = new Set(['tally', 'tally_restricted']),
): string[] {
  checkClusterName(cluster)
  const sql = statement.trim()
  const database = CREATE_DATABASE.exec(sql)
  if (database !== null) return [`${sql} ON CLUSTER ${cluster}`]
  const table = CREATE_TABLE.exec(sql)
  if (table !== null) return renderCreateTable(table, cluster, sql)
  const mv = CREATE_MV.exec(sql)
  if (mv !== null) return [renderMaterializedView(mv, cluster, databases, sql)]
  const view = CREATE_VIEW.exec(sql)
  if (view !== null) return [onClusterView(sql, cluster)]
  const alter = ALTER_TABLE.exec(sql)
  if (alter !== null) {
    const name = alter[1] as string
    const action = alter[2] as string
    if (placementOf(name) === 'global')
      return [`ALTER TABLE ${name} ON CLUSTER ${cluster}${action}`]
    const local = `ALTER TABLE ${localName(name)} ON CLUSTER ${cluster}${action}`
    return COLUMN_ALTER.test(action)
      ? [local, `ALTER TABLE ${name} ON CLUSTER ${cluster}${action}`]
      : [local]
  }
  // A backfill (INSERT ... SELECT) runs once, through the Distributed tables, which route its
  // rows to their shards.
  if (INSERT_SELECT.test(sql)) return [sql]
  const drop = DROP_TABLE.exec(sql)
  if (drop !== null) {
    const name = drop[1] as string
    const sync = drop[2] ?? ''
    const dropped = [`DROP TABLE IF EXISTS ${name} ON CLUSTER ${cluster}${sync}`]
    // A sharded table is the Distributed one and, under it, the shards' own.
    if (placementOf(name) === 'sharded') {
      dropped.push(`DROP TABLE IF EXISTS ${localName(name)} ON CLUSTER ${cluster}${sync}`)
    }
    return dropped
  }
  // A view (materialized ones too) is one object per node, never Distributed.
  const dropView = DROP_VIEW.exec(sql)
  if (dropView !== null) return [`DROP VIEW IF EXISTS ${dropView[1]} ON CLUSTER ${cluster}`]
  throw new ClusterRenderError(`no cluster rendering for: ${head(sql)}`)
}

/**
 * The migrations for a cluster: same versions, names and checksums (the files' own), so the
 * record in tally.schema_migrations is the same and the collector's start-up finds them applied.
 */
export function renderClusterMigrations(migrations: Migration[], cluster: string): Migration[] {
  checkClusterName(cluster)
  const databases = new Set(['tally'])
  for (const m of migrations) {
    for (const s of m.statements) {
      const db = CREATE_DATABASE.exec(s.trim())
      if (db !== null) databases.add(db[2] as string)
    }
  }
  return migrations.map((m) => ({
    ...m,
    statements: m.statements.flatMap((s) => {
      try {
        return renderClusterStatement(s, cluster, databases)
      } catch (err) {
        if (err instanceof ClusterRenderError) {
          throw new ClusterRenderError(`migration ${m.version}_${m.name}: ${err.message}`)
        }
        throw err
      }
    }),
  }))
}

/**
 * What `migrate()` creates before the first migration, for a cluster: the database everywhere
 * and the record of applied migrations as a global Replicated table. Created first, so that
 * migrate()'s own `IF NOT EXISTS` statements find them and change nothing.
 */
export function clusterBootstrap(cluster: string): string[] {
  checkClusterName(cluster)
  return [
    `CREATE DATABASE IF NOT EXISTS tally ON CLUSTER ${cluster}`,
    `CREATE TABLE IF NOT EXISTS tally.schema_migrations ON CLUSTER ${cluster}\n` +
      "(\n    version UInt32,\n    name String,\n    checksum String,\n    applied_at DateTime64(3, 'UTC')\n)\n" +
      `ENGINE = ReplicatedMergeTree('${GLOBAL_PATH}', '${REPLICA}')\nORDER BY version\n` +
      'SETTINGS replicated_deduplication_window = 0',
  ]
}

/** `CREATE [OR REPLACE] VIEW name ...` with `ON CLUSTER` after the name (the usage views too). */
export function onClusterView(sql: string, cluster: string): string {
  checkClusterName(cluster)
  const match = CREATE_VIEW.exec(sql.trim())
  if (match === null) throw new ClusterRenderError(`not a CREATE VIEW: ${head(sql)}`)
  const orReplace = match[1] ?? ''
  const ifNotExists = match[2] ?? ''
  const name = match[3] as string
  const rest = match[4] as string
  return `CREATE ${orReplace}VIEW ${ifNotExists}${name} ON CLUSTER ${cluster}${rest}`
}

/**
 * Applies the cluster migrations through one node of the cluster. Refuses a node whose
 * schema_migrations is a single server's (the collector was started there before this ran):
 * that node's tables are not replicated, and the record would make every migration look done.
 */
export async function migrateCluster(
  store: Store,
  cluster: string,
  migrations: Migration[] = readMigrations(),
): Promise<number[]> {
  const rendered = renderClusterMigrations(migrations, cluster)
  const [existing] = await selectParsed(
    store,
    z.object({ engine: z.string() }),
    "SELECT engine FROM system.tables WHERE database = 'tally' AND name = 'schema_migrations'",
  )
  if (existing !== undefined && !existing.engine.startsWith('Replicated')) {
    throw new MigrationError(
      `tally.schema_migrations on this node is a ${existing.engine} table: the schema here was ` +
        'created for a single server (a collector started before `tally collector migrate --cluster`). ' +
        'Drop the tally and tally_restricted databases on this node (they are not replicated) and run it again.',
    )
  }
  for (const statement of clusterBootstrap(cluster)) await store.command({ query: statement })
  return migrate(store, rendered)
}
