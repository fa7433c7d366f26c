/**
 * Reading a stopped collector's store from a separate process (query-store.ts): chDB binds one
 * data directory per process, and a test may look at several. Starting the engine costs seconds,
 * so a whole store is dumped by one process, not one per table.
 */
import { spawn } from 'node:child_process'
import { join } from 'node:path'

const QUERY_STORE = join(new URL('.', import.meta.url).pathname, 'query-store.ts')

/**
 * Runs query-store.ts with `args` and resolves with what it printed. Its standard input is
 * /dev/null: the embedded engine must not see a pipe there (it would take it as INSERT data).
 */
export function runQueryStore(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [QUERY_STORE, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    const stdout: Buffer[] = []
    let stderr = ''
    child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk))
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk
    })
    child.once('error', reject)
    child.once('close', (code, signal) => {
      if (code === 0) resolve(Buffer.concat(stdout).toString('utf8'))
      else reject(new Error(`query-store.ts ${args.join(' ')}: exit ${code ?? signal}: ${stderr}`))
    })
  })
}

/** `database.table` → rows, for every table (not views, not Null tables) of the databases. */
export async function dumpStore(
  dataDir: string,
  databases: string[] = ['tally', 'tally_restricted'],
): Promise<Map<string, unknown[]>> {
  const dump = JSON.parse(await runQueryStore([dataDir, '--dump', ...databases])) as Record<
    string,
    unknown[]
  >
  return new Map(Object.entries(dump))
}

/** The rows of each query, read by one process. */
export async function queryStoreEach(dataDir: string, queries: string[]): Promise<unknown[][]> {
  return JSON.parse(await runQueryStore([dataDir, '--each', ...queries])) as unknown[][]
}
