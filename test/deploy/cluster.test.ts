/**
 * The migrations rendered for the cluster (collector/store/cluster.ts) and `tally collector
 * migrate`. The rendered statements cannot run here (no Keeper, no cluster), so they are checked
 * three ways: the engine's own parser accepts each one (formatQuery on the embedded engine), a
 * sanity check of what the rendering promises (ON CLUSTER everywhere, Replicated engines,
 * Distributed twins, materialized views on the _local tables), and the columns of every rendered
 * table equal the columns the real migrations give on one server (read from system.columns).
 */
import { execFile } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { migrationScript } from '../../cli/commands/migrate.ts'
import { openStore, type Store } from '../../collector/store/client.ts'
import {
  ClusterRenderError,
  clusterBootstrap,
  GLOBAL_TABLES,
  localName,
  migrateCluster,
  renderClusterMigrations,
  renderClusterStatement,
  SHARDING_KEYS,
} from '../../collector/store/cluster.ts'
import {
  type Migration,
  MigrationError,
  migrate,
  readMigrations,
} from '../../collector/store/migrations.ts'
import { selectRows } from '../../collector/store/rows.ts'

const ROOT = new URL('../../', import.meta.url).pathname
const CLUSTER = 'tally'

let dir: string
let store: Store
/** Single-server tables (database.name) and their columns, from the real migrations. */
let single: Map<string, Column[]>
let singleEngines: Map<string, string>

interface Column {
  name: string
  type: string
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tally-cluster-test-'))
  store = openStore({ dataDir: dir })
  await migrate(store)
  const tables = await selectRows<{ db: string; name: string; engine: string }>(
    store,
    `SELECT database AS db, name, engine FROM system.tables
     WHERE database IN ('tally', 'tally_restricted') AND engine NOT IN ('View', 'MaterializedView')`,
  )
  singleEngines = new Map(tables.map((t) => [`${t.db}.${t.name}`, t.engine]))
  const columns = await selectRows<{ db: string; table: string; name: string; type: string }>(
    store,
    `SELECT database AS db, table, name, type FROM system.columns
     WHERE database IN ('tally', 'tally_restricted') ORDER BY database, table, position`,
  )
  single = new Map()
  for (const c of columns) {
    const key = `${c.db}.${c.table}`
    if (!singleEngines.has(key)) continue
    single.set(key, [...(single.get(key) ?? []), { name: c.name, type: c.type }])
  }
})

afterAll(async () => {
  await store?.close()
  await rm(dir, { recursive: true, force: true })
})

const rendered = () => renderClusterMigrations(readMigrations(), CLUSTER)
const statements = () => [...clusterBootstrap(CLUSTER), ...rendered().flatMap((m) => m.statements)]

/** Splits at top-level commas (not inside parentheses or quotes). */
function splitTopLevel(text: string): string[] {
  const parts: string[] = []
  let depth = 0
  let quote: string | undefined
  let start = 0
  for (let i = 0; i < text.length; i++) {
    const ch = text[i] as string
    if (quote !== undefined) {
      if (ch === quote) quote = undefined
      continue
    }
    if (ch === "'" || ch === '`') quote = ch
    else if (ch === '(') depth += 1
    else if (ch === ')') depth -= 1
    else if (ch === ',' && depth === 0) {
      parts.push(text.slice(start, i))
      start = i + 1
    }
  }
  parts.push(text.slice(start))
  return parts.map((p) => p.trim()).filter((p) => p !== '')
}

/** Where the parenthesis opened at `open` closes. */
function closing(text: string, open: number): number {
  let depth = 0
  for (let i = open; i < text.length; i++) {
    if (text[i] === '(') depth += 1
    if (text[i] === ')' && --depth === 0) return i
  }
  throw new Error(`unbalanced parentheses in ${text.slice(0, 80)}`)
}

/** A column definition's name and type, without CODEC, DEFAULT, TTL or COMMENT. */
function parseColumn(definition: string): Column {
  const m = /^(`[^`]+`|\w+)\s+([\s\S]+)$/.exec(definition)
  if (m === null) throw new Error(`not a column: ${definition}`)
  const name = (m[1] as string).replace(/`/g, '')
  let type = m[2] as string
  const clause = /\s(CODEC|DEFAULT|MATERIALIZED|ALIAS|EPHEMERAL|TTL|COMMENT)\b/.exec(type)
  // Only a clause outside the type's parentheses ends the type.
  if (clause !== null) {
    const before = type.slice(0, clause.index)
    const opened = (before.match(/\(/g) ?? []).length - (before.match(/\)/g) ?? []).length
    if (opened === 0) type = before
  }
  return { name, type: type.trim().replace(/\s+/g, ' ') }
}

interface RenderedTable {
  name: string
  engine: string
  columns: Column[]
  statement: string
}

/** The tables of the rendered statements, `AS other` resolved to the other's columns. */
function renderedTables(sql: string[]): Map<string, RenderedTable> {
  const tables = new Map<string, RenderedTable>()
  for (const statement of sql) {
    const added = /^ALTER TABLE (\S+) ON CLUSTER \w+ ADD COLUMN (?:IF NOT EXISTS )?([\s\S]+)$/.exec(
      statement,
    )
    if (added !== null) {
      const table = tables.get(added[1] as string)
      if (table === undefined) throw new Error(`${added[1]} altered before it was created`)
      const column = parseColumn(added[2] as string)
      // A new array: an `AS other` table shares its source's until its own ALTER.
      if (!table.columns.some((c) => c.name === column.name))
        table.columns = [...table.columns, column]
      continue
    }
    const dropped = /^DROP TABLE IF EXISTS (\S+) ON CLUSTER \w+/.exec(statement)
    if (dropped !== null) {
      tables.delete(dropped[1] as string)
      continue
    }
    const head = /^CREATE TABLE (?:IF NOT EXISTS )?(\S+) ON CLUSTER (\w+)/.exec(statement)
    if (head === null) continue
    expect(head[2]).toBe(CLUSTER)
    const name = head[1] as string
    const engine = /\nENGINE = (\w+)/.exec(statement)?.[1] ?? ''
    const rest = statement.slice(head[0].length)
    let columns: Column[]
    const as = /^\s+AS (\S+)\s*\n/.exec(rest)
    if (as !== null) {
      const source = tables.get(as[1] as string)
      if (source === undefined) throw new Error(`${name} is AS ${as[1]}, not created before it`)
      columns = source.columns
    } else {
      const open = rest.indexOf('(')
      columns = splitTopLevel(rest.slice(open + 1, closing(rest, open))).map(parseColumn)
    }
    tables.set(name, { name, engine, columns, statement })
  }
  return tables
}

describe('renderClusterMigrations', () => {
  it('keeps versions, names and checksums, so the record is the same as on one server', () => {
    const original = readMigrations()
    expect(rendered().map((m) => [m.version, m.name, m.checksum])).toEqual(
      original.map((m) => [m.version, m.name, m.checksum]),
    )
  })

  it('renders statements the engine parses', async () => {
    for (const statement of statements()) {
      const [row] = await selectRows<{ f: string }>(store, 'SELECT formatQuery({q:String}) AS f', {
        q: statement,
      })
      // A backfill runs once, through the Distributed tables; everything else on every node.
      if (statement.startsWith('INSERT INTO ')) expect(row?.f).toMatch(/^INSERT INTO tally\.\w+ /)
      else expect(row?.f, statement.split('\n')[0]).toMatch(/ON CLUSTER tally/)
    }
  })

  it('puts every statement ON CLUSTER and makes every MergeTree Replicated', () => {
    for (const statement of statements()) {
      const head = statement.split('\n')[0] as string
      // A backfill runs once through the Distributed tables, not on every node.
      if (head.startsWith('INSERT INTO ')) continue
      expect(head, head).toMatch(/ ON CLUSTER tally\b/)
      expect(statement).not.toMatch(/non_replicated_deduplication_window/)
      const engine = /\nENGINE = (\w+)/.exec(statement)?.[1]
      if (engine === undefined) continue
      expect(
        ['Distributed', 'Null'].includes(engine) || /^Replicated\w*MergeTree$/.test(engine),
        head,
      ).toBe(true)
      if (engine.startsWith('Replicated')) {
        const sharded = head.includes('_local ')
        expect(statement).toContain(
          sharded
            ? "('/clickhouse/tables/{shard}/{database}/{table}', '{replica}'"
            : "('/clickhouse/tables/all/{database}/{table}', '{replica}'",
        )
      }
    }
  })

  it('gives every time-series table a Replicated _local table and a Distributed twin', () => {
    const tables = renderedTables(statements())
    for (const [table, key] of Object.entries(SHARDING_KEYS)) {
      if (!singleEngines.has(table)) continue
      const local = tables.get(localName(table))
      expect(local?.engine, table).toMatch(
        singleEngines.get(table) === 'Null' ? /^Null$/ : /^Replicated/,
      )
      const twin = tables.get(table)
      expect(twin?.engine, table).toBe('Distributed')
      const [db, name] = table.split('.')
      expect(twin?.statement).toContain(
        `ENGINE = Distributed('${CLUSTER}', '${db}', '${name}_local', ${key})`,
      )
    }
    // Every _local table has its twin, and no global table is sharded.
    for (const name of tables.keys()) {
      if (name.endsWith('_local'))
        expect(tables.get(name.slice(0, -6))?.engine, name).toBe('Distributed')
    }
    for (const table of GLOBAL_TABLES) {
      expect(tables.has(localName(table)), table).toBe(false)
      expect(tables.get(table)?.engine, table).toMatch(/^Replicated/)
    }
  })

  it('classifies every table of the migrations, and keeps the time series per shard', () => {
    for (const table of singleEngines.keys()) {
      expect(GLOBAL_TABLES.has(table) || table in SHARDING_KEYS, table).toBe(true)
    }
    for (const prefix of ['tally.host_metrics', 'tally.usage_site', 'tally_restricted.']) {
      for (const table of singleEngines.keys()) {
        if (table.startsWith(prefix)) expect(table in SHARDING_KEYS, table).toBe(true)
      }
    }
    expect(SHARDING_KEYS['tally.ingest_batches']).toBeDefined()
    expect(SHARDING_KEYS['tally.host_inventory']).toBeDefined()
  })

  it('has the same columns, names and types, as the tables the migrations make on one server', () => {
    const tables = renderedTables(statements())
    const names = new Set([...tables.keys()].filter((n) => !n.endsWith('_local')))
    expect([...names].sort()).toEqual([...single.keys()].sort())
    for (const [table, columns] of single) {
      expect(tables.get(table)?.columns, table).toEqual(columns)
      if (table in SHARDING_KEYS)
        expect(tables.get(localName(table))?.columns, table).toEqual(columns)
    }
  })

  it('points materialized views from _local sources to _local targets', () => {
    const views = statements().filter((s) => s.startsWith('CREATE MATERIALIZED VIEW'))
    expect(views.length).toBeGreaterThanOrEqual(4)
    for (const view of views) {
      const target = / TO (\S+) AS/.exec(view)?.[1] ?? ''
      expect(target, view).toMatch(/_local$/)
      const sources = [...view.matchAll(/\bFROM (tally\.\w+)/g)].map((m) => m[1])
      expect(sources.length).toBeGreaterThan(0)
      for (const source of sources) expect(source).toMatch(/_local$/)
    }
  })

  it('keeps deduplication: a table with a window uses the Replicated default, one without none', () => {
    const tables = renderedTables(statements())
    // host_metrics had non_replicated_deduplication_window: the replicated default applies.
    expect(tables.get('tally.host_metrics_local')?.statement).not.toMatch(/deduplication_window/)
    // register_entries had none: a second identical insert is kept, as on one server.
    expect(tables.get('tally.register_entries')?.statement).toMatch(
      /SETTINGS replicated_deduplication_window = 0$/,
    )
    // Other settings are kept.
    expect(tables.get('tally_restricted.flows_local')?.statement).toMatch(
      /SETTINGS old_parts_lifetime = 60$/,
    )
  })

  it('renders later migrations: ALTERs, views; refuses what it cannot place', () => {
    expect(
      renderClusterStatement('ALTER TABLE tally.host_metrics ADD COLUMN x UInt8', 'c'),
    ).toEqual([
      'ALTER TABLE tally.host_metrics_local ON CLUSTER c ADD COLUMN x UInt8',
      'ALTER TABLE tally.host_metrics ON CLUSTER c ADD COLUMN x UInt8',
    ])
    expect(
      renderClusterStatement('ALTER TABLE tally.host_metrics MODIFY TTL ts + INTERVAL 1 DAY', 'c'),
    ).toEqual(['ALTER TABLE tally.host_metrics_local ON CLUSTER c MODIFY TTL ts + INTERVAL 1 DAY'])
    expect(renderClusterStatement('ALTER TABLE tally.cases ADD COLUMN y String', 'c')).toEqual([
      'ALTER TABLE tally.cases ON CLUSTER c ADD COLUMN y String',
    ])
    expect(renderClusterStatement('CREATE VIEW IF NOT EXISTS tally.v AS SELECT 1', 'c')).toEqual([
      'CREATE VIEW IF NOT EXISTS tally.v ON CLUSTER c AS SELECT 1',
    ])
    const unknown: Migration = {
      version: 999,
      name: 'unknown',
      statements: [
        'CREATE TABLE IF NOT EXISTS tally.mystery\n(\n    x UInt8\n)\nENGINE = MergeTree\nORDER BY x',
      ],
      checksum: 'f'.repeat(64),
    }
    expect(() => renderClusterMigrations([unknown], 'c')).toThrow(
      /migration 999_unknown: table tally\.mystery is neither global nor sharded/,
    )
    expect(() => renderClusterStatement('INSERT INTO tally.agents VALUES (1)', 'c')).toThrow(
      ClusterRenderError,
    )
    expect(() =>
      renderClusterStatement('CREATE TABLE tally.agents\n(\n    x UInt8\n)\nENGINE = Memory', 'c'),
    ).toThrow(/engine Memory/)
    expect(() => renderClusterMigrations(readMigrations(), "x'; DROP")).toThrow(/cluster name/)
  })
})

describe('migrateCluster', () => {
  it('refuses a node whose schema was created for one server, and changes nothing', async () => {
    const before = await selectRows<{ n: number }>(store, 'SELECT count() AS n FROM system.tables')
    await expect(migrateCluster(store, CLUSTER)).rejects.toBeInstanceOf(MigrationError)
    await expect(migrateCluster(store, CLUSTER)).rejects.toThrow(/created for a single server/)
    expect(await selectRows(store, 'SELECT count() AS n FROM system.tables')).toEqual(before)
  })
})

const run = promisify(execFile)
/** `tally collector migrate ...` through migrateCommand, as its own process (one engine each). */
async function tallyMigrate(args: string[], env: Record<string, string> = {}) {
  const program = `
    import { Command } from 'commander'
    import { buildCommand } from './cli/command-table.ts'
    import { migrateCommand } from './cli/commands/migrate.ts'
    const tally = new Command('tally').exitOverride()
    tally.addCommand(new Command('collector').addCommand(buildCommand(migrateCommand)))
    try {
      await tally.parseAsync(process.argv.slice(1), { from: 'user' })
    } catch (err) {
      process.stderr.write(String(err && err.message) + '\\n')
      process.exit(1)
    }`
  try {
    const { stdout, stderr } = await run(
      process.execPath,
      ['--input-type=module', '-e', program, 'collector', 'migrate', ...args],
      { cwd: ROOT, env: { ...process.env, ...env }, maxBuffer: 16 * 1024 * 1024 },
    )
    return { code: 0, stdout, stderr }
  } catch (err) {
    const failed = err as { code: number; stdout: string; stderr: string }
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr }
  }
}

describe('tally collector migrate', () => {
  it('--print --cluster prints the rendered SQL, the records and the usage views ON CLUSTER', async () => {
    const result = await tallyMigrate(['--print', '--cluster', CLUSTER], { TALLY_USAGE_K: '7' })
    expect(result.stderr).toBe('')
    expect(result.code).toBe(0)
    for (const statement of statements()) expect(result.stdout).toContain(`${statement};\n`)
    for (const m of readMigrations()) {
      expect(result.stdout).toContain(
        `VALUES (${m.version}, '${m.name}', '${m.checksum}', now64(3));`,
      )
    }
    expect(result.stdout).toMatch(
      /CREATE OR REPLACE VIEW tally\.usage_by_service ON CLUSTER tally SQL SECURITY DEFINER AS/,
    )
    expect(result.stdout).toContain('HAVING min(min_cell_hosts) >= 7')
  })

  it('--cluster needs a server, and a cluster name that is a name', async () => {
    const dataDir = join(dir, 'never')
    const embedded = await tallyMigrate(['--cluster', CLUSTER], { TALLY_DATA_DIR: dataDir })
    expect(embedded.code).toBe(1)
    expect(embedded.stderr).toMatch(/--cluster needs a ClickHouse server/)
    const bad = await tallyMigrate(['--print', '--cluster', 'a-b'])
    expect(bad.code).toBe(1)
    expect(bad.stderr).toMatch(/cluster name "a-b"/)
  })

  it('applies to the configured store like the collector, then finds nothing to do', async () => {
    const dataDir = join(dir, 'applied')
    const config = join(dir, 'collector.yaml')
    await writeFile(config, `data_dir: ${dataDir}\nusage:\n  k: 3\n`)
    const first = await tallyMigrate(['-c', config])
    expect(first.stderr).toBe('')
    expect(first.stdout).toBe(
      `applied migrations ${readMigrations()
        .map((m) => m.version)
        .join(', ')} on the embedded engine in ${dataDir}\n`,
    )
    const second = await tallyMigrate(['-c', config])
    expect(second.stdout).toBe(`schema up to date on the embedded engine in ${dataDir}\n`)
  })

  it('--print without --cluster is a script that builds the same schema as migrate()', async () => {
    const script = await migrationScript({ migrations: readMigrations(), k: 5 })
    const scriptFile = join(dir, 'schema.sql')
    await writeFile(scriptFile, script)
    // A fresh engine in its own process: run the script, then migrate() must find it all done.
    const check = `
      import { readFileSync } from 'node:fs'
      import { openStore } from './collector/store/client.ts'
      import { migrate, splitStatements } from './collector/store/migrations.ts'
      const store = openStore({ dataDir: process.argv[1] })
      for (const query of splitStatements(readFileSync(process.argv[2], 'utf8'))) await store.command({ query })
      const applied = await migrate(store)
      const r = await store.query({ format: 'JSONEachRow', query: "SELECT database || '.' || table AS t, name, type FROM system.columns WHERE database IN ('tally', 'tally_restricted') AND (database, table) NOT IN (SELECT database, name FROM system.tables WHERE engine = 'View') ORDER BY database, table, position" })
      process.stdout.write(JSON.stringify({ applied, columns: await r.json() }))
      await store.close()`
    const { stdout } = await run(
      process.execPath,
      ['--input-type=module', '-e', check, join(dir, 'script-engine'), scriptFile],
      { cwd: ROOT, maxBuffer: 16 * 1024 * 1024 },
    )
    const result = JSON.parse(stdout) as {
      applied: number[]
      columns: { t: string; name: string; type: string }[]
    }
    expect(result.applied).toEqual([])
    const expected = await selectRows<{ t: string; name: string; type: string }>(
      store,
      "SELECT database || '.' || table AS t, name, type FROM system.columns WHERE database IN ('tally', 'tally_restricted') AND (database, table) NOT IN (SELECT database, name FROM system.tables WHERE engine = 'View') ORDER BY database, table, position",
    )
    expect(result.columns).toEqual(expected)
  })
})
