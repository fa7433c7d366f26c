/**
 * tally.collector_metrics (migration 007): the collectors' own counters, the ITSD register's
 * status (self-metrics.ts) and the readiness write probe (health.ts), one row per value, written
 * here and read only by the dashboards.
 */
import type { Store } from './client.ts'
import { insertRows } from './rows.ts'

export type CollectorMetricRow = {
  /** Seconds since the epoch. */
  ts: number
  /** The collector that wrote it (host:port). */
  instance: string
  metric: string
  labels: Record<string, string>
  value: number
}

export async function writeCollectorMetrics(
  store: Store,
  rows: readonly CollectorMetricRow[],
): Promise<void> {
  await insertRows(store, 'tally.collector_metrics', [...rows])
}
