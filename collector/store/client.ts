/**
 * One ClickHouse client for the collector: the embedded engine (chDB) in the data directory by
 * default, a server when `clickhouse.url` is set. The same SQL and the same client API either way.
 */
import { closeSync, fstatSync, mkdirSync, openSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { type ClickHouseClient, ClickHouseLogLevel, createClient } from '@clickhouse/client'
import { createChdbConnection } from 'chdb/connection'

export interface StoreOptions {
  dataDir: string
  url?: string | undefined
  username?: string
  password?: string
}

export type Store = ClickHouseClient

type ClientConnection = NonNullable<NonNullable<Parameters<typeof createClient>[0]>['connection']>

/** Numbers come back as JSON numbers on both engines; no value we read exceeds 2^53. */
const SETTINGS = { output_format_json_quote_64bit_integers: 0 } as const

export function openStore(options: StoreOptions): Store {
  if (options.url !== undefined) {
    return createClient({
      url: options.url,
      username: options.username ?? 'default',
      password: options.password ?? '',
      compression: { request: true, response: true },
      clickhouse_settings: SETTINGS,
      // Every failure reaches its caller, which logs it as JSON or says it in one line; the
      // client's own console logger would print each one again as a multi-line block.
      log: { level: ClickHouseLogLevel.OFF },
    })
  }
  const path = join(options.dataDir, 'clickhouse')
  mkdirSync(path, { recursive: true, mode: 0o700 })
  detachStdinFromEngine()
  // chdb types its connection against its own copy of @clickhouse/client-common; the shape is
  // the same, the declarations are not.
  const connection = createChdbConnection({ path }) as unknown as ClientConnection
  return createClient({ connection, clickhouse_settings: SETTINGS })
}

/** Where the embedded engine keeps its files, for messages to the operator. */
export const embeddedPath = (dataDir: string): string => join(dataDir, 'clickhouse')

export class StdinDetachError extends Error {
  override name = 'StdinDetachError'
}

/**
 * The embedded engine takes the process's file descriptor 0 as the external data of every
 * INSERT (chDB's client keeps ClickHouse's default input, STDIN_FILENO). When stdin is a file or
 * a pipe that carries data, each insert then fails ("Processing async inserts with both inlined
 * and external data ... is not supported"), and with async_insert off it would store whatever
 * stdin holds as rows. Nothing in the collector or the demo reads stdin (Ctrl-C is a signal, the
 * agent's tcpdump child gets 'ignore'), so fd 0 is pointed at /dev/null before the engine runs a
 * query. Node has no dup2: closing 0 and opening /dev/null takes the lowest free descriptor, 0;
 * if something else took it in between, that is refused rather than left half done.
 */
export function detachStdinFromEngine(): void {
  if (isDevNull(0)) return
  try {
    closeSync(0)
  } catch {
    // Already closed: the open below takes 0.
  }
  const fd = openSync('/dev/null', 'r')
  if (fd !== 0) {
    closeSync(fd)
    throw new StdinDetachError(
      'could not point standard input at /dev/null for the embedded engine; start the collector with </dev/null',
    )
  }
}

function isDevNull(fd: number): boolean {
  try {
    const [a, b] = [fstatSync(fd), statSync('/dev/null')]
    return a.rdev === b.rdev && a.ino === b.ino
  } catch {
    return false
  }
}
