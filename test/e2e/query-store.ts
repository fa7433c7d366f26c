/**
 * Reads a collector's embedded engine from a process of its own, as JSON on stdout:
 *
 *   query-store.ts DATA_DIR SQL          the rows of one query, as an array
 *   query-store.ts DATA_DIR --each SQL…  the rows of each query, as an array of arrays
 *   query-store.ts DATA_DIR --dump DB…   every row of every table of the databases (not views,
 *                                        not Null tables), as { "db.table": rows }
 *
 * The dump reads all tables in this one process: starting the engine costs seconds, so a process
 * per table made a store dump take longer than a test may.
 */
import { openStore } from '../../collector/store/client.ts'

const [dataDir, sql, ...databases] = process.argv.slice(2)
if (dataDir === undefined || sql === undefined || (sql.startsWith('--') && databases.length === 0))
  throw new Error('usage: query-store.ts DATA_DIR (SQL | --each SQL... | --dump DB...)')
const store = openStore({ dataDir })
try {
  const rows = async (query: string): Promise<unknown[]> =>
    (await store.query({ query, format: 'JSONEachRow' })).json()
  if (sql === '--each') {
    const results: unknown[][] = []
    for (const query of databases) results.push(await rows(query))
    process.stdout.write(JSON.stringify(results))
  } else if (sql !== '--dump') {
    process.stdout.write(JSON.stringify(await rows(sql)))
  } else {
    const tables = (await (
      await store.query({
        query: `SELECT database, name FROM system.tables
                WHERE database IN ({databases:Array(String)})
                  AND engine NOT IN ('View', 'MaterializedView', 'Null')
                ORDER BY database, name`,
        query_params: { databases },
        format: 'JSONEachRow',
      })
    ).json()) as Array<{ database: string; name: string }>
    const dump: Record<string, unknown[]> = {}
    for (const { database, name } of tables) {
      dump[`${database}.${name}`] = await rows(`SELECT * FROM \`${database}\`.\`${name}\``)
    }
    process.stdout.write(JSON.stringify(dump))
  }
} finally {
  await store.close()
}
