/**
 * What `tally collector run` and `tally demo` check before they open the store, so that the
 * operator reads one line naming the problem instead of the engine's or the client's output.
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'

/**
 * The pid of another live process holding the embedded engine in `dataDir`, from the status file
 * the engine keeps while it runs (it is removed at a clean close; a stale one names a dead pid).
 */
export function embeddedEngineHolder(dataDir: string): number | undefined {
  let status: string
  try {
    status = readFileSync(join(dataDir, 'clickhouse', 'status'), 'utf8')
  } catch {
    return undefined
  }
  const pid = Number(/^PID:\s*(\d+)/m.exec(status)?.[1])
  if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid) return undefined
  try {
    process.kill(pid, 0)
    return pid
  } catch (err) {
    // EPERM: alive, but another user's.
    return (err as NodeJS.ErrnoException).code === 'EPERM' ? pid : undefined
  }
}

export function refuseSharedDataDir(dataDir: string): void {
  const holder = embeddedEngineHolder(dataDir)
  if (holder !== undefined) {
    throw new Error(
      `the data directory ${dataDir} is in use by another collector (pid ${holder}); stop it or choose another data_dir`,
    )
  }
}

const CONNECTION_FAILURE =
  /ECONNREFUSED|ENOTFOUND|EHOSTUNREACH|ENETUNREACH|ETIMEDOUT|EAI_AGAIN|ECONNRESET|socket hang up|Timeout error/i

/**
 * A start that failed because the ClickHouse server is not there, said as such and naming the
 * setting; anything else is passed on as it is.
 */
export function explainStartFailure(err: unknown, clickhouseUrl: string | undefined): Error {
  const error = err instanceof Error ? err : new Error(String(err))
  if (clickhouseUrl === undefined || /clickhouse\.url/.test(error.message)) return error
  const code = (error as NodeJS.ErrnoException).code ?? ''
  if (!CONNECTION_FAILURE.test(`${code} ${error.message}`)) return error
  let where = clickhouseUrl
  try {
    const url = new URL(clickhouseUrl)
    where = `${url.protocol}//${url.host}`
  } catch {
    // The configuration was validated; keep it as it is.
  }
  return new Error(
    `cannot reach the ClickHouse server of clickhouse.url (${where}): ${error.message.split('\n')[0]}`,
  )
}
