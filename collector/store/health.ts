/**
 * Whether the store takes writes, and which failures mean it does not.
 *
 * A full disk leaves reads (and so a ping) working while every insert fails, so readiness is a
 * write: one tiny row in tally.collector_metrics (a table every deployment has, single node or
 * cluster; under this collector's own instance name and a metric of its own, so the dashboards'
 * instance and counter panels are unchanged), done at most every few seconds and only when
 * someone asks, so an idle collector writes nothing. A store failure seen by any request counts too: it marks the store not ready
 * until the next probe succeeds.
 */
import { hostname } from 'node:os'
import type { Store } from './client.ts'
import { writeCollectorMetrics } from './collector-metrics.ts'

/**
 * ClickHouse error codes that say "the store cannot do this now", not "this request is wrong":
 * read-only tables or server, no space, too many parts, timeouts and network failures, memory
 * and concurrency limits, Keeper, and file system errors.
 */
const UNAVAILABLE_CODES = new Set([
  74, // CANNOT_READ_FROM_FILE_DESCRIPTOR
  75, // CANNOT_WRITE_TO_FILE_DESCRIPTOR
  76, // CANNOT_OPEN_FILE
  159, // TIMEOUT_EXCEEDED
  164, // READONLY
  202, // TOO_MANY_SIMULTANEOUS_QUERIES
  209, // SOCKET_TIMEOUT
  210, // NETWORK_ERROR
  225, // NO_ZOOKEEPER
  236, // ABORTED
  241, // MEMORY_LIMIT_EXCEEDED
  242, // TABLE_IS_READ_ONLY
  243, // NOT_ENOUGH_SPACE
  252, // TOO_MANY_PARTS
  279, // ALL_CONNECTION_TRIES_FAILED
  319, // UNKNOWN_STATUS_OF_INSERT
  425, // SYSTEM_ERROR
  999, // KEEPER_EXCEPTION
])

/** Node's errors for a server that cannot be reached or a file system that refuses writes. */
const UNAVAILABLE_ERRNO = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EPIPE',
  'ENOSPC',
  'EROFS',
  'EDQUOT',
  'EIO',
])

const UNAVAILABLE_TEXT =
  /No space left on device|Read-only file system|not enough space|Timeout error|socket hang up|connection is closed|ChdbConnection is closed/i

/** True when `err` (or what caused it) means the store is unavailable, not that the query is bad. */
export function isStoreUnavailable(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 5; depth++) {
    const { code, clickhouseCode } = e as Error & { code?: unknown; clickhouseCode?: unknown }
    const numeric = Number(typeof clickhouseCode === 'number' ? clickhouseCode : code)
    if (Number.isInteger(numeric) && UNAVAILABLE_CODES.has(numeric)) return true
    if (typeof code === 'string' && UNAVAILABLE_ERRNO.has(code)) return true
    if (UNAVAILABLE_TEXT.test(e.message)) return true
    e = e.cause
  }
  return false
}

export type WriteHealth = { ok: true } | { ok: false; reason: string }

const PROBE_METRIC = 'collector.write_probe'

/** The store's write health, probed at most every `maxAgeMs`. */
export class WriteProbe {
  readonly #store: Store
  readonly #maxAgeMs: number
  readonly #instance: () => string
  #last: { at: number; health: WriteHealth } | undefined
  #running: Promise<WriteHealth> | undefined

  constructor(
    store: Store,
    options: { maxAgeMs?: number | undefined; instance?: (() => string) | undefined } = {},
  ) {
    this.#store = store
    this.#maxAgeMs = options.maxAgeMs ?? 5_000
    this.#instance = options.instance ?? hostname
  }

  /** A request saw the store fail: not ready until a probe succeeds. */
  failed(err: unknown): void {
    this.#last = { at: Date.now(), health: { ok: false, reason: reasonOf(err) } }
  }

  async check(): Promise<WriteHealth> {
    const last = this.#last
    if (last !== undefined && Date.now() - last.at < this.#maxAgeMs) return last.health
    this.#running ??= this.#probe().finally(() => {
      this.#running = undefined
    })
    return this.#running
  }

  async #probe(): Promise<WriteHealth> {
    const now = Date.now()
    let health: WriteHealth
    try {
      await writeCollectorMetrics(this.#store, [
        {
          ts: Math.floor(now / 1000),
          instance: this.#instance(),
          metric: PROBE_METRIC,
          labels: {},
          // Unique, so no deduplication can turn a failing write into a silent no-op.
          value: now + Math.random(),
        },
      ])
      health = { ok: true }
    } catch (err) {
      health = { ok: false, reason: reasonOf(err) }
    }
    this.#last = { at: Date.now(), health }
    return health
  }
}

/**
 * What failed, by code only (`243 NOT_ENOUGH_SPACE`, `ECONNREFUSED`): an engine's message can
 * quote the data of the query that failed, and this goes into answers and logs.
 */
function reasonOf(err: unknown): string {
  if (!(err instanceof Error)) return 'unknown error'
  const { code, type, clickhouseCode } = err as Error & {
    code?: unknown
    type?: unknown
    clickhouseCode?: unknown
  }
  const parts = [clickhouseCode ?? code, type].filter(
    (p): p is string | number => typeof p === 'string' || typeof p === 'number',
  )
  return parts.length > 0 ? parts.join(' ') : err.name
}
