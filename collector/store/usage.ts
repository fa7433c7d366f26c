/**
 * Tier A: site usage on one fixed grid, released cell by cell with the k threshold.
 *
 * The cell is (site, minute, direction, ip_version, transport, service, peer_class). A host
 * counts toward a cell's k only with real traffic in that minute: packets and bytes above zero,
 * from a batch that reached the collector before its minute was due for release (later usage is
 * not stored: it cannot be backdated into a minute already judged).
 * Its identity in the store is a keyed id (usage-host-key.ts), never its name.
 *
 * Once a minute is closed (it ended `release_after_seconds` ago), `releaseUsage` reads it once:
 * every cell of at least k hosts is released as it is, and the site's other cells are summed
 * into one `other` cell, released only when its hosts reach k together. The minute is marked,
 * so it is never read again: a released value never changes, and what arrives later for it is
 * dropped rather than shown. The hourly table is summed from released minutes only.
 *
 * Every answer (the API, the CLI, Grafana) comes from the views `usage_by_<grouping>`, which
 * sum released cells and nothing else. So any two answers, whatever their groupings, windows or
 * steps, are sums over the same released cells, and their difference is one too: a suppressed
 * cell, or a part of the `other` cell, is in no answer and cannot be had by subtracting answers.
 * The views are SQL SECURITY DEFINER: Grafana's user reads them without any grant on a table.
 */

import { z } from 'zod'
import { USAGE_DIMENSIONS, type UsageDimension } from '../../protocol/api/names.ts'
import type { HostBatch, UsageContribution } from '../../protocol/v1.ts'
import type { AgentIdentity } from '../auth/agents.ts'
import type { Store } from './client.ts'
import { onClusterView } from './cluster.ts'
import { selectParsed } from './rows.ts'
import type { UsageHostKey } from './usage-host-key.ts'

/** The grid: every answer is made of whole minutes. */
export const GRID_SECONDS = 60
const HOUR = 3600

/**
 * How far back a release catches up after the collector was down. Raw cells are dropped three
 * hours on (migration 010); minutes older than this are not released at all.
 */
const RELEASE_CATCH_UP_SECONDS = 2 * HOUR

const usageView = (by: UsageDimension): string => `tally.usage_by_${by}`

function checkK(k: number): number {
  if (!Number.isInteger(k) || k < 1) throw new Error(`k must be a positive integer, not ${k}`)
  return k
}

/**
 * The view for one grouping. Parameters: site ('' for every site), from and to (DateTime, to
 * exclusive) and step (seconds). It reads the hourly table when step and both ends are whole
 * hours, and for the whole hours of a range asked in one step; the per-minute one for the rest.
 * Both hold the same released cells and an hour read lies whole in one step, so the choice
 * changes nothing but the cost. A released cell lies whole in one step. k
 * here only hides more: cells released under a smaller k, after k was raised.
 */
export function usageViewSql(by: UsageDimension, k: number): string {
  checkK(k)
  const value = by === 'ip_version' ? 'toString(ip_version)' : by
  const cells = (table: string, when: string) => `
        SELECT ts, site, folded, direction, ip_version, transport, service, peer_class,
               sum(bytes) AS cell_bytes, sum(packets) AS cell_packets, sum(flows) AS cell_flows,
               uniqMergeState(hosts) AS cell_hosts
        FROM ${table}
        WHERE ${when}
          AND ({site:String} = '' OR site = {site:String})
          AND ts >= {from:DateTime} AND ts < {to:DateTime}
        GROUP BY ts, site, folded, direction, ip_version, transport, service, peer_class
        HAVING min(min_cell_hosts) >= ${k}`
  const aligned = `{step:UInt32} % ${HOUR} = 0 AND toUnixTimestamp({from:DateTime}) % ${HOUR} = 0 AND toUnixTimestamp({to:DateTime}) % ${HOUR} = 0`
  // One step over the whole range (the API's default): its whole hours lie in that step.
  const wholeHours = `{step:UInt32} >= toUInt32({to:DateTime}) - toUInt32({from:DateTime})
          AND ts >= toDateTime(intDiv(toUInt32({from:DateTime}) + ${HOUR - 1}, ${HOUR}) * ${HOUR})
          AND ts < toDateTime(intDiv(toUInt32({to:DateTime}), ${HOUR}) * ${HOUR})`
  const hourly = `((${aligned}) OR (${wholeHours}))`
  return `CREATE OR REPLACE VIEW ${usageView(by)} SQL SECURITY DEFINER AS
SELECT bucket AS ts, site, value AS ${by},
       sum(cell_bytes) AS bytes, sum(cell_packets) AS packets, sum(cell_flows) AS flows,
       uniqMerge(cell_hosts) AS hosts
FROM
(
    SELECT {from:DateTime} + intDiv(toUInt32(ts) - toUInt32({from:DateTime}), {step:UInt32}) * {step:UInt32} AS bucket,
           site, if(folded = 1, 'other', ${value}) AS value,
           cell_bytes, cell_packets, cell_flows, cell_hosts
    FROM
    (${cells('tally.usage_released_1h', hourly)}
      UNION ALL ${cells('tally.usage_released', `NOT (${hourly})`)}
    )
)
GROUP BY bucket, site, value
ORDER BY bucket, site, bytes DESC`
}

/** (Re)creates every usage view with this k; run at start, so a raised k applies at once. */
export async function createUsageViews(store: Store, k: number, cluster?: string): Promise<void> {
  for (const by of USAGE_DIMENSIONS) {
    const sql = usageViewSql(by, k)
    await store.command({ query: cluster === undefined ? sql : onClusterView(sql, cluster) })
  }
}

/** What ingest needs to store usage: the host key and the collector's release delay. */
export interface UsageIngest {
  hostKey: UsageHostKey
  releaseAfterSeconds: number
}

/**
 * The rows a batch adds to tally.usage_contributions, or none: usage that arrives once its
 * minute is due for release (`releaseAfterSeconds` after the minute's end) is not stored: the
 * minute may be released already, and a late host must not be counted into its k, nor change it.
 * The batch's interval was checked (`implausibleTime`) before; its usage is stamped at the
 * interval's start, inside it.
 */
export function usageContributionRows(
  agent: AgentIdentity,
  batch: HostBatch,
  { hostKey, releaseAfterSeconds }: UsageIngest,
  receivedAt: number,
): Record<string, unknown>[] {
  const usage: UsageContribution[] = batch.usage ?? []
  if (usage.length === 0) return []
  // The minute is released once `releaseAfterSeconds` have passed since its end (releaseUsage):
  // until then a batch still counts, even one an agent resent after a backoff; after, never.
  const minuteEnd =
    (Math.floor(batch.interval.start / (GRID_SECONDS * 1000)) + 1) * GRID_SECONDS * 1000
  if (receivedAt >= minuteEnd + releaseAfterSeconds * 1000) return []
  const ts = Math.floor(batch.interval.start / 1000)
  const host = hostKey.idOf(agent.agent_id)
  return usage.map((u) => ({ ts, site: agent.site, host, ...u }))
}

/**
 * The release: every cell of the chosen minutes with at least k hosts as it is, and per site and
 * minute one `other` cell of the rest, itself only with at least k hosts. `minutes` is the
 * condition on `ts`: one minute ({minute:DateTime}) for the collector, a whole day
 * ({from:DateTime}, {to:DateTime}) for the benchmark's history.
 */
export const releaseSql = (
  minutes: 'ts = {minute:DateTime}' | 'ts >= {from:DateTime} AND ts < {to:DateTime}',
) => `INSERT INTO tally.usage_released
    (ts, site, folded, direction, ip_version, transport, service, peer_class,
     bytes, packets, flows, min_cell_hosts, hosts)
WITH cells AS
(
    SELECT ts, site, direction, ip_version, transport, service, peer_class,
           sum(bytes) AS b, sum(packets) AS p, sum(flows) AS f,
           uniqMergeState(hosts) AS h, finalizeAggregation(h) AS n
    FROM tally.usage_cells
    WHERE ${minutes}
    GROUP BY ts, site, direction, ip_version, transport, service, peer_class
)
SELECT ts, site, 0, direction, ip_version, transport, service, peer_class, b, p, f, n, h
FROM cells
WHERE n >= {k:UInt32}
UNION ALL
SELECT ts, site, 1, 'other', 0, 'other', 'other', 'other',
       sum(b), sum(p), sum(f), uniqMerge(h) AS hosts_together, uniqMergeState(h)
FROM cells
WHERE n < {k:UInt32}
GROUP BY ts, site
HAVING hosts_together >= {k:UInt32}`

const RELEASE_SQL = releaseSql('ts = {minute:DateTime}')

export interface ReleaseOptions {
  k: number
  /** A minute is released once it ended this long ago (`usage.release_after_seconds`). */
  releaseAfterSeconds: number
  /** The collector's clock, ms. */
  now?: number
}

/** The last released minute (seconds), or undefined when none was. */
async function lastReleasedMinute(store: Store): Promise<number | undefined> {
  const [row] = await selectParsed(
    store,
    z.object({ last: z.number() }),
    'SELECT toUnixTimestamp(max(minute)) AS last, count() AS n FROM tally.usage_release_marks HAVING n > 0',
  )
  return row?.last
}

/**
 * Releases every closed minute not released yet, oldest first, each exactly once; returns how
 * many minutes it released. Minutes that closed more than RELEASE_CATCH_UP_SECONDS ago and were
 * never released (the collector was down) are skipped, not released late.
 */
export async function releaseUsage(store: Store, options: ReleaseOptions): Promise<number> {
  const k = checkK(options.k)
  const now = Math.floor((options.now ?? Date.now()) / 1000)
  const closedBefore = floorTo(now - options.releaseAfterSeconds, GRID_SECONDS)
  const last = await lastReleasedMinute(store)
  let minute = Math.max(
    last === undefined ? 0 : last + GRID_SECONDS,
    floorTo(now - RELEASE_CATCH_UP_SECONDS, GRID_SECONDS),
  )
  let released = 0
  for (; minute + GRID_SECONDS <= closedBefore; minute += GRID_SECONDS) {
    // chDB keeps a query's settings for the session: the token is always set, '' included.
    await store.command({
      query: RELEASE_SQL,
      query_params: { minute: dateTimeParam(minute), k },
      clickhouse_settings: {
        insert_deduplication_token: `usage-release:${minute}`,
        deduplicate_blocks_in_dependent_materialized_views: 1,
      },
    })
    await store.insert({
      table: 'tally.usage_release_marks',
      values: [{ minute, k, released_at: Date.now() }],
      format: 'JSONEachRow',
      clickhouse_settings: {
        insert_deduplication_token: `usage-release-mark:${minute}`,
        deduplicate_blocks_in_dependent_materialized_views: 1,
      },
    })
    released++
  }
  return released
}

const floorTo = (seconds: number, unit: number): number => Math.floor(seconds / unit) * unit
const ceilTo = (seconds: number, unit: number): number => Math.ceil(seconds / unit) * unit

/** A range widened to whole grid cells: from down, to up. */
export const toGrid = (from: number, to: number): { from: number; to: number } => ({
  from: floorTo(from, GRID_SECONDS),
  to: ceilTo(to, GRID_SECONDS),
})

export interface UsageQuery {
  site: string
  /** Seconds since the epoch, on the grid; `to` is exclusive. */
  from: number
  to: number
  by: UsageDimension
  /** Seconds, a multiple of GRID_SECONDS. */
  step: number
}

export interface UsageBucket {
  ts: string
  site: string
  value: string
  bytes: number
  packets: number
  flows: number
  hosts: number
}

/** A bucket as the view gives it: seconds, and the grouping's value as text. */
const UsageBucketRow = z.object({
  ts: z.number(),
  site: z.string(),
  value: z.string(),
  bytes: z.number(),
  packets: z.number(),
  flows: z.number(),
  hosts: z.number(),
})

export async function queryUsage(store: Store, query: UsageQuery): Promise<UsageBucket[]> {
  const rows = await selectParsed(
    store,
    UsageBucketRow,
    `SELECT toUnixTimestamp(ts) AS ts, site, toString(${query.by}) AS value, bytes, packets, flows, hosts
     FROM ${usageView(query.by)}(site = {site:String}, from = {from:DateTime}, to = {to:DateTime}, step = {step:UInt32})`,
    {
      site: query.site,
      from: dateTimeParam(query.from),
      to: dateTimeParam(query.to),
      step: query.step,
    },
  )
  return rows.map((r) => ({ ...r, ts: new Date(r.ts * 1000).toISOString() }))
}

/**
 * A DateTime query parameter from seconds since the epoch. ClickHouse reads a parameter of fewer
 * than five digits as a year, not a timestamp ("value 3600 cannot be parsed as DateTime"), so
 * it gets ten, which is read as seconds whatever the session's time zone.
 */
export const dateTimeParam = (seconds: number): string => String(seconds).padStart(10, '0')
