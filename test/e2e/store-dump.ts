/**
 * Every row of a stopped collector's store, read in one separate process (query-store.ts --dump):
 * chDB binds one data directory per process, and starting the engine costs seconds, so one
 * process per table would not fit in a test.
 */
import { execFile } from 'node:child_process'
import { join } from 'node:path'
import { promisify } from 'node:util'

const QUERY_STORE = join(new URL('.', import.meta.url).pathname, 'query-store.ts')

/** `database.table` → rows, for every table (not views, not Null tables) of the databases. */
export async function dumpStore(
  dataDir: string,
  databases: string[] = ['tally', 'tally_restricted'],
): Promise<Map<string, unknown[]>> {
  const { stdout } = await promisify(execFile)(
    process.execPath,
    [QUERY_STORE, dataDir, '--dump', ...databases],
    { maxBuffer: 256 * 1024 * 1024 },
  )
  return new Map(Object.entries(JSON.parse(stdout) as Record<string, unknown[]>))
}
