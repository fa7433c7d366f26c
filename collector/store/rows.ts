/** Small helpers over the client for the control tables: read rows, write one row. */
import { z } from 'zod'
import type { Store } from './client.ts'

export type QueryParams = Record<string, unknown>

/**
 * Reads rows and checks each against the repository's row schema, so a column renamed or retyped
 * in a migration fails here, naming the column, instead of travelling on as a wrong value.
 */
export async function selectParsed<S extends z.ZodType>(
  store: Store,
  row: S,
  query: string,
  params: QueryParams = {},
): Promise<z.output<S>[]> {
  const result = await store.query({ query, query_params: params, format: 'JSONEachRow' })
  const parsed = z.array(row).safeParse(await result.json())
  if (!parsed.success) {
    throw new Error(`stored rows do not have the expected shape: ${z.prettifyError(parsed.error)}`)
  }
  return parsed.data
}

/** Unchecked: to be replaced by selectParsed in each repository. */
export async function selectRows<T>(
  store: Store,
  query: string,
  params: QueryParams = {},
): Promise<T[]> {
  const result = await store.query({ query, query_params: params, format: 'JSONEachRow' })
  return result.json<T>()
}

export async function insertRows(
  store: Store,
  table: string,
  rows: Record<string, unknown>[],
  deduplicationToken?: string,
): Promise<void> {
  if (rows.length === 0) return
  await store.insert({
    table,
    values: rows,
    format: 'JSONEachRow',
    // Always set, also to '' (no token): chDB applies a query's settings to its session, so a
    // token left over from the previous insert would make the engine drop this one.
    clickhouse_settings: {
      insert_deduplication_token: deduplicationToken ?? '',
      deduplicate_blocks_in_dependent_materialized_views: 1,
    },
  })
}
