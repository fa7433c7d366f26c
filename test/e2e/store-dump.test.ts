/**
 * The store reader the end-to-end tests use on a stopped collector's data directory: one process
 * dumps every table of both databases (and no view), or runs several queries, in order.
 */
import { spawnSync } from 'node:child_process'
import { describe, expect, it } from 'vitest'
import { tmp } from './harness.ts'
import { dumpStore, queryStoreEach } from './store-dump.ts'

const ROOT = new URL('../../', import.meta.url).pathname

describe('query-store.ts', () => {
  const dataDir = tmp('store-dump')

  it('dumps every table of tally and tally_restricted in one process, views left out', async () => {
    // A migrated store, as a collector leaves it, with one row we know.
    const made = spawnSync(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `import { openStore } from '${ROOT}collector/store/client.ts'
         import { migrate } from '${ROOT}collector/store/migrations.ts'
         const store = openStore({ dataDir: process.argv[1] })
         await migrate(store)
         await store.close()`,
        dataDir,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8', timeout: 50_000 },
    )
    expect(made.status, made.stderr).toBe(0)

    const [tables, views, migrations] = (await queryStoreEach(dataDir, [
      `SELECT concat(database, '.', name) AS name FROM system.tables
       WHERE database IN ('tally', 'tally_restricted')
         AND engine NOT IN ('View', 'MaterializedView', 'Null') ORDER BY name`,
      `SELECT concat(database, '.', name) AS name FROM system.tables
       WHERE database IN ('tally', 'tally_restricted') AND engine IN ('View', 'MaterializedView')`,
      'SELECT count() AS n FROM tally.schema_migrations',
    ])) as [Array<{ name: string }>, Array<{ name: string }>, Array<{ n: number }>]
    expect(tables.map((t) => t.name)).toEqual(
      expect.arrayContaining(['tally.host_metrics', 'tally.usage_cells', 'tally_restricted.flows']),
    )
    expect(views.length).toBeGreaterThan(0)

    const dump = await dumpStore(dataDir)
    expect([...dump.keys()]).toEqual(tables.map((t) => t.name))
    expect(dump.get('tally.schema_migrations')).toHaveLength(Number(migrations[0]?.n))
    expect(Number(migrations[0]?.n)).toBeGreaterThan(0)
    for (const { name } of views) expect(dump.has(name)).toBe(false)
  })
})
