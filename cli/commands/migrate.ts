/**
 * `tally collector migrate`: the schema migrations, applied to the configured store (what the
 * collector does at start) or printed, for one server or rendered for a cluster.
 */
import type { CollectorConfig } from '../../collector/config.ts'
import type { Migration } from '../../collector/store/migrations.ts'
import { USAGE_DIMENSIONS } from '../../protocol/api/names.ts'
import type { CommandSpec } from '../command-table.ts'

export interface ScriptOptions {
  migrations: Migration[]
  /** Rendered ON CLUSTER with Replicated and Distributed engines when set. */
  cluster?: string | undefined
  /** The k of the usage views (usage.k). */
  k: number
}

/**
 * The whole schema as one SQL script for `clickhouse-client --multiquery`: what migrate() would
 * run on an empty store, the records of tally.schema_migrations (so a collector started later
 * finds every migration applied), and the usage views with this k.
 */
export async function migrationScript(options: ScriptOptions): Promise<string> {
  const { clusterBootstrap, onClusterView, renderClusterMigrations } = await import(
    '../../collector/store/cluster.ts'
  )
  const { usageViewSql } = await import('../../collector/store/usage.ts')
  const { cluster } = options
  const migrations =
    cluster === undefined
      ? options.migrations
      : renderClusterMigrations(options.migrations, cluster)
  const bootstrap =
    cluster === undefined
      ? [
          'CREATE DATABASE IF NOT EXISTS tally',
          "CREATE TABLE IF NOT EXISTS tally.schema_migrations\n(\n    version UInt32,\n    name String,\n    checksum String,\n    applied_at DateTime64(3, 'UTC')\n)\nENGINE = MergeTree\nORDER BY version",
        ]
      : clusterBootstrap(cluster)
  const out: string[] = [
    `-- Tally schema${cluster === undefined ? ' for one server' : ` for the cluster ${cluster}`}, ` +
      'from collector/store/migrations/*.sql (`tally collector migrate --print`).',
    '-- Apply with: clickhouse-client --multiquery < schema.sql. Every statement can be re-run.',
    '',
    ...bootstrap.map((s) => `${s};\n`),
  ]
  for (const m of migrations) {
    const version = String(m.version).padStart(3, '0')
    out.push(`-- ${version}_${m.name}`, '')
    for (const statement of m.statements) out.push(`${statement};\n`)
    out.push(
      'INSERT INTO tally.schema_migrations (version, name, checksum, applied_at) VALUES ' +
        `(${m.version}, '${m.name}', '${m.checksum}', now64(3));\n`,
    )
  }
  out.push(
    `-- The k-threshold usage views (usage.k = ${options.k}); the collector recreates them at start.`,
    '',
  )
  for (const by of USAGE_DIMENSIONS) {
    const view = usageViewSql(by, options.k)
    out.push(`${cluster === undefined ? view : onClusterView(view, cluster)};\n`)
  }
  return out.join('\n')
}

interface MigrateOptions {
  config?: string
  print?: boolean
  cluster?: string
}

/** Applies the migrations and the usage views to the configured store; says where, and what. */
async function applyMigrations(config: CollectorConfig, cluster: string | undefined) {
  if (cluster !== undefined && config.clickhouse.url === undefined) {
    throw new Error(
      '--cluster needs a ClickHouse server: set clickhouse.url (TALLY_CLICKHOUSE_URL) to a node of the cluster',
    )
  }
  const { openStore } = await import('../../collector/store/client.ts')
  const { migrate } = await import('../../collector/store/migrations.ts')
  const { migrateCluster, onClusterView } = await import('../../collector/store/cluster.ts')
  const { createUsageViews, usageViewSql } = await import('../../collector/store/usage.ts')
  const store = openStore({
    dataDir: config.data_dir,
    url: config.clickhouse.url,
    username: config.clickhouse.username,
    password: config.clickhouse.password,
  })
  try {
    const applied =
      cluster === undefined ? await migrate(store) : await migrateCluster(store, cluster)
    if (cluster === undefined) await createUsageViews(store, config.usage.k)
    else {
      for (const by of USAGE_DIMENSIONS) {
        await store.command({ query: onClusterView(usageViewSql(by, config.usage.k), cluster) })
      }
    }
    const where =
      (config.clickhouse.url === undefined
        ? `the embedded engine in ${config.data_dir}`
        : new URL(config.clickhouse.url).origin) +
      (cluster === undefined ? '' : ` (cluster ${cluster})`)
    process.stdout.write(
      applied.length === 0
        ? `schema up to date on ${where}\n`
        : `applied migrations ${applied.join(', ')} on ${where}\n`,
    )
  } finally {
    await store.close()
  }
}

export const migrateCommand: CommandSpec<MigrateOptions> = {
  name: 'migrate',
  description:
    'Apply the database migrations to the configured store, as the collector does at start, ' +
    'and (re)create the usage views; or print them as SQL with --print. With --cluster NAME ' +
    'they are rendered ON CLUSTER NAME with Replicated and Distributed engines (see ' +
    'deploy/cluster/README.md); run that once before the first collector starts.',
  options: [
    {
      flags: '-c, --config <file>',
      description: 'collector YAML config file (clickhouse.*, usage.k)',
    },
    {
      flags: '--print',
      description: 'print the SQL to standard output instead of applying it (needs no store)',
    },
    {
      flags: '--cluster <name>',
      description: 'a cluster of remote_servers to render the migrations for',
    },
  ],
  run: async (options) => {
    const { loadCollectorConfig } = await import('../../collector/config.ts')
    const { readMigrations } = await import('../../collector/store/migrations.ts')
    const { checkClusterName } = await import('../../collector/store/cluster.ts')
    const config = loadCollectorConfig(options.config)
    if (options.cluster !== undefined) checkClusterName(options.cluster)
    if (options.print !== true) return applyMigrations(config, options.cluster)
    process.stdout.write(
      await migrationScript({
        migrations: readMigrations(),
        cluster: options.cluster,
        k: config.usage.k,
      }),
    )
  },
}
