/**
 * Reading tier A: site usage with the k threshold applied.
 *
 * The rule, in one place: for the chosen grouping, a bucket (site, time step, value) is shown
 * only when at least k distinct hosts contributed to it. Smaller buckets are folded together into
 * one `other` bucket per site and step, which is itself shown only when it reaches k hosts. The
 * rule lives in parameterised SQL views that the API and the dashboards both read, created at
 * start with the configured k, so nothing can read tier A without it.
 */
import type { Store } from './client.ts'
import { onClusterView } from './cluster.ts'
import { selectRows } from './rows.ts'

export const USAGE_DIMENSIONS = [
  'service',
  'peer_class',
  'transport',
  'ip_version',
  'direction',
] as const
export type UsageDimension = (typeof USAGE_DIMENSIONS)[number]

export const usageView = (by: UsageDimension): string => `tally.usage_by_${by}`

/**
 * The view for one grouping. Parameters: site ('' for every site), from and to (DateTime, to
 * exclusive) and step (seconds). It reads the coarsest rollup whose resolution divides the step
 * and the range's ends, so a query over months reads hourly rows.
 */
export function usageViewSql(by: UsageDimension, k: number): string {
  if (!Number.isInteger(k) || k < 1) throw new Error(`k must be a positive integer, not ${k}`)
  const value = by === 'ip_version' ? 'toString(ip_version)' : by
  const source = (table: string, when: string) => `
      SELECT ts, site, ${value} AS value, bytes, packets, flows, hosts
      FROM ${table}
      WHERE ${when}
        AND ({site:String} = '' OR site = {site:String})
        AND ts >= {from:DateTime} AND ts < {to:DateTime}`
  const aligned = (seconds: number) =>
    `{step:UInt32} % ${seconds} = 0 AND toUnixTimestamp({from:DateTime}) % ${seconds} = 0 AND toUnixTimestamp({to:DateTime}) % ${seconds} = 0`
  return `CREATE OR REPLACE VIEW ${usageView(by)} AS
SELECT bucket AS ts, site, if(host_count >= ${k}, value, 'other') AS ${by},
       sum(bytes) AS bytes, sum(packets) AS packets, sum(flows) AS flows,
       uniqMerge(host_state) AS hosts
FROM
(
    SELECT {from:DateTime} + intDiv(toUInt32(ts) - toUInt32({from:DateTime}), {step:UInt32}) * {step:UInt32} AS bucket,
           site, value,
           sum(bytes) AS bytes, sum(packets) AS packets, sum(flows) AS flows,
           uniqMergeState(hosts) AS host_state, finalizeAggregation(host_state) AS host_count
    FROM
    (${source('tally.usage_site_1h', aligned(3600))}
      UNION ALL ${source('tally.usage_site_1m', `NOT (${aligned(3600)}) AND ${aligned(60)}`)}
      UNION ALL ${source('tally.usage_site', `NOT (${aligned(60)})`)}
    )
    GROUP BY bucket, site, value
)
GROUP BY bucket, site, ${by}
HAVING hosts >= ${k}
ORDER BY bucket, site, bytes DESC`
}

/** (Re)creates every usage view with this k; run at start, so a changed k applies at once. */
export async function createUsageViews(store: Store, k: number, cluster?: string): Promise<void> {
  for (const by of USAGE_DIMENSIONS) {
    const sql = usageViewSql(by, k)
    await store.command({ query: cluster === undefined ? sql : onClusterView(sql, cluster) })
  }
}

export interface UsageQuery {
  site: string
  /** Seconds since the epoch; `to` is exclusive. */
  from: number
  to: number
  by: UsageDimension
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

export async function queryUsage(store: Store, query: UsageQuery): Promise<UsageBucket[]> {
  const rows = await selectRows<Record<string, string | number>>(
    store,
    `SELECT toUnixTimestamp(ts) AS ts, site, toString(${query.by}) AS value, bytes, packets, flows, hosts
     FROM ${usageView(query.by)}(site = {site:String}, from = {from:DateTime}, to = {to:DateTime}, step = {step:UInt32})`,
    {
      site: query.site,
      from: dateTimeParam(query.from),
      to: dateTimeParam(query.to),
      step: query.step,
    },
  )
  return rows.map((r) => ({
    ts: new Date(Number(r.ts) * 1000).toISOString(),
    site: String(r.site),
    value: String(r.value),
    bytes: Number(r.bytes),
    packets: Number(r.packets),
    flows: Number(r.flows),
    hosts: Number(r.hosts),
  }))
}

/**
 * A DateTime query parameter from seconds since the epoch. ClickHouse reads a parameter of fewer
 * than five digits as a year, not a timestamp ("value 3600 cannot be parsed as DateTime"), so
 * it gets ten, which is read as seconds whatever the session's time zone.
 */
export const dateTimeParam = (seconds: number): string => String(seconds).padStart(10, '0')
