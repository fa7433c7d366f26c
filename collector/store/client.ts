/**
 * One ClickHouse client for the collector: the embedded engine (chDB) in the data directory by
 * default, a server when `clickhouse.url` is set. The same SQL and the same client API either way.
 */
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { type ClickHouseClient, ClickHouseLogLevel, createClient } from '@clickhouse/client'
import { createChdbConnection } from 'chdb/connection'
import { detachStdinFromEngine } from '../../common/stdin.ts'

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
