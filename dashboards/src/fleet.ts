/**
 * Fleet: which agents are online, when each was last heard from, what versions run, and whether
 * agents are holding batches back (spool) or losing packets (capture drops). Tier T only.
 *
 * Agents are read from one summary row per agent (`tally.agent_last_batch`) and reporting from
 * one row per site and minute (`tally.ingest_site_1m`), never from every batch record; series
 * over hosts come from the host metrics table the step calls for (./rollups.ts), the top ten.
 */
import {
  dashboard,
  datasourceVariable,
  type JsonObject,
  type PanelSpec,
  SITE_FILTER,
  siteVariable,
} from './grafana.ts'
import { BUCKET, COVERED_MS, TOP_HOSTS, topHostSamples, WITH_STEP } from './rollups.ts'

/**
 * Every enrolled, unrevoked agent of the selected site(s) with its status: online when its last
 * batch arrived within three of its intervals (at least a minute), offline after that, never
 * seen before its first batch.
 */
const AGENTS = `agents AS
(
    SELECT a.site AS site, a.host AS host, a.agent_id AS agent_id,
           b.agent_id != '' AS seen,
           if(seen, toNullable(b.received), NULL) AS last_seen,
           if(seen, toNullable(b.reported_version), NULL) AS agent_version,
           if(seen, toNullable(b.max_seq), NULL) AS last_seq,
           multiIf(NOT seen, 'never seen',
                   dateDiff('second', b.received, now64(3)) <= greatest(60, 3 * b.interval_s), 'online',
                   'offline') AS status
    FROM
    (
        SELECT agent_id, site, host FROM tally.agents FINAL
        WHERE revoked_at IS NULL AND ${SITE_FILTER}
    ) AS a
    LEFT JOIN
    (
        SELECT agent_id, max(last_received) AS received,
               argMaxMerge(agent_version) AS reported_version, max(last_seq) AS max_seq,
               argMaxMerge(interval_seconds) AS interval_s
        FROM tally.agent_last_batch
        WHERE ${SITE_FILTER}
        GROUP BY agent_id
    ) AS b ON a.agent_id = b.agent_id
)`

/**
 * A query over `agents`. No SETTINGS (an unmatched join side is recognised by its empty key),
 * so the dashboards run for a user in the readonly = 1 profile.
 */
const withAgents = (select: string) => `WITH ${AGENTS}
${select}`

const AGENT_TABLE = withAgents(`SELECT a.site AS site, a.host AS host, a.status AS status,
       a.agent_version AS version, a.last_seen AS last_seen,
       dateDiff('second', a.last_seen, now64(3)) AS seconds_ago, a.last_seq AS last_seq,
       if(h.host = '', NULL, toNullable(h.spool_depth)) AS spool_depth,
       if(h.has_capture = 1, if(h.capture_running = 1, 'running', 'stopped'), 'none') AS capture
FROM agents AS a
LEFT JOIN
(
    SELECT site, toString(host) AS host,
           argMaxIf(highest, ts, metric = 'tally.agent.spool.depth') AS spool_depth,
           argMaxIf(highest, ts, metric = 'tally.capture.running') AS capture_running,
           countIf(metric = 'tally.capture.running') > 0 AS has_capture
    FROM
    (
        SELECT site, host, metric, ts, max(max) AS highest
        FROM tally.host_metrics_1h
        WHERE ts > now() - INTERVAL 1 DAY
          AND metric IN ('tally.agent.spool.depth', 'tally.capture.running')
          AND ${SITE_FILTER}
        GROUP BY site, host, metric, ts
    )
    GROUP BY site, host
) AS h ON a.site = h.site AND a.host = h.host
ORDER BY site, host`)

const CAPTURE_DROPS = `metric = 'tally.capture.packets'
  AND attributes['tally.capture.outcome'] IN ('dropped_kernel', 'dropped_interface')
  AND ${SITE_FILTER}`

const DELIVERY_TROUBLE = `metric IN ('tally.agent.batches.dropped', 'tally.agent.spool.corrupted', 'tally.agent.send.failures')
  AND ${SITE_FILTER}`

const statusColours: JsonObject[] = [
  {
    type: 'value',
    options: {
      online: { color: 'green', index: 0 },
      offline: { color: 'red', index: 1 },
      'never seen': { color: 'orange', index: 2 },
    },
  },
]

const hostLink: JsonObject = {
  matcher: { id: 'byName', options: 'host' },
  properties: [
    {
      id: 'links',
      value: [
        {
          title: 'Host health',
          // biome-ignore lint/suspicious/noTemplateCurlyInString: Grafana data link variables
          url: '/d/tally-host-health?var-site=${__data.fields.site}&var-host=${__value.raw}&${__url_time_range}',
        },
      ],
    },
  ],
}

const byName = (name: string, properties: JsonObject[]): JsonObject => ({
  matcher: { id: 'byName', options: name },
  properties,
})

const panels: PanelSpec[] = [
  { type: 'row', title: 'Agents' },
  {
    type: 'stat',
    title: 'Agents online',
    description: 'Enrolled agents whose last batch arrived within three intervals (at least 60 s).',
    w: 4,
    h: 4,
    sql: withAgents(`SELECT countIf(status = 'online') AS online FROM agents`),
  },
  {
    type: 'stat',
    title: 'Agents offline',
    description: 'Enrolled agents not heard from within three intervals, or never.',
    w: 4,
    h: 4,
    thresholds: [[1, 'red']],
    sql: withAgents(`SELECT countIf(status != 'online') AS offline FROM agents`),
  },
  {
    type: 'stat',
    title: 'Sites',
    w: 4,
    h: 4,
    baseColor: 'blue',
    sql: withAgents('SELECT uniqExact(site) AS sites FROM agents'),
  },
  {
    type: 'stat',
    title: 'Agent versions in use',
    w: 4,
    h: 4,
    baseColor: 'blue',
    thresholds: [[2, 'orange']],
    sql: withAgents('SELECT uniqExact(agent_version) AS versions FROM agents'),
  },
  {
    type: 'piechart',
    title: 'Agent versions',
    description: 'The version each agent reported in its last batch.',
    w: 8,
    h: 8,
    sql: withAgents(`SELECT ifNull(agent_version, 'never reported') AS version, count() AS agents
FROM agents GROUP BY version ORDER BY agents DESC`),
  },
  {
    type: 'barchart',
    title: 'Online and offline by site',
    w: 16,
    h: 4,
    options: { xField: 'site' },
    overrides: [
      byName('online', [{ id: 'color', value: { mode: 'fixed', fixedColor: 'green' } }]),
      byName('offline', [{ id: 'color', value: { mode: 'fixed', fixedColor: 'red' } }]),
    ],
    sql: withAgents(`SELECT site, countIf(status = 'online') AS online, countIf(status != 'online') AS offline
FROM agents GROUP BY site ORDER BY site`),
  },
  {
    type: 'table',
    title: 'Agents',
    description:
      'Every enrolled agent: status, version and sequence number of its last batch, spool depth and capture state (the highest of its last reported hour, within a day). Click a host for its health.',
    w: 24,
    h: 10,
    overrides: [
      hostLink,
      byName('status', [
        { id: 'mappings', value: statusColours },
        { id: 'custom.cellOptions', value: { type: 'color-text' } },
      ]),
      byName('seconds_ago', [
        { id: 'unit', value: 's' },
        { id: 'displayName', value: 'last seen ago' },
      ]),
      byName('spool_depth', [
        { id: 'displayName', value: 'spooled batches' },
        {
          id: 'thresholds',
          value: {
            mode: 'absolute',
            steps: [
              { color: 'green', value: null },
              { color: 'orange', value: 10 },
              { color: 'red', value: 360 },
            ],
          },
        },
        { id: 'custom.cellOptions', value: { type: 'color-text' } },
      ]),
    ],
    sql: AGENT_TABLE,
  },
  { type: 'row', title: 'Activity, spool and capture' },
  {
    type: 'timeseries',
    title: 'Agents reporting, by site',
    description: 'Distinct agents whose batches arrived in each interval.',
    w: 12,
    minInterval: '1m',
    seriesLabel: 'site',
    sql: `WITH greatest(60, intDiv($__interval_s + 59, 60) * 60) AS step
SELECT ${BUCKET} AS time, site, uniqMerge(agents) AS agents
FROM tally.ingest_site_1m
WHERE $__timeFilter(ts) AND ${SITE_FILTER}
GROUP BY time, site
ORDER BY time`,
  },
  {
    type: 'timeseries',
    title: 'Spool backlog',
    description: `Batches waiting in each agent spool when it built its batch, for the ${TOP_HOSTS} agents with the deepest spool over the time range. A growing backlog means the agent cannot deliver.`,
    w: 12,
    minInterval: '10s',
    seriesLabel: 'agent',
    sql: `${WITH_STEP}
SELECT ${BUCKET} AS time, concat(site, '/', host) AS agent, max(max) AS batches
FROM ${topHostSamples(`metric = 'tally.agent.spool.depth' AND ${SITE_FILTER}`, 'max(max)')}
GROUP BY time, agent
ORDER BY time`,
  },
  {
    type: 'timeseries',
    title: 'Capture drops',
    description: `Packets the kernel or the interface dropped before the agent capture saw them, per second, for the ${TOP_HOSTS} hosts that dropped most over the time range.`,
    w: 12,
    minInterval: '10s',
    unit: 'pps',
    seriesLabel: 'series',
    sql: `${WITH_STEP}
SELECT ${BUCKET} AS time,
       concat(site, '/', host, ' ', replaceOne(attributes['tally.capture.outcome'], 'dropped_', '')) AS series,
       sum(sum) * 1000 / ${COVERED_MS} AS packets_per_second
FROM ${topHostSamples(CAPTURE_DROPS, 'sum(sum)')}
GROUP BY time, series
ORDER BY time`,
  },
  {
    type: 'timeseries',
    title: 'Batches dropped, corrupted and send failures',
    description: `Batches the spool dropped when full or found corrupted, and failed deliveries, per interval, for the ${TOP_HOSTS} hosts with the most over the time range.`,
    w: 12,
    minInterval: '10s',
    bars: true,
    seriesLabel: 'series',
    sql: `${WITH_STEP}
SELECT ${BUCKET} AS time,
       concat(site, '/', host, ' ', replaceOne(metric, 'tally.agent.', '')) AS series,
       sum(sum) AS events
FROM ${topHostSamples(DELIVERY_TROUBLE, 'sum(sum)')}
GROUP BY time, series
ORDER BY time`,
  },
  { type: 'row', title: 'Inventory' },
  {
    type: 'table',
    title: 'Host inventory',
    description: 'What each host last reported about itself (operating system, CPU, memory).',
    w: 24,
    h: 8,
    overrides: [hostLink, byName('memory', [{ id: 'unit', value: 'bytes' }])],
    sql: `SELECT site, host,
       JSONExtractString(inventory, 'os', 'distro') AS os,
       JSONExtractString(inventory, 'os', 'release') AS release,
       JSONExtractString(inventory, 'os', 'kernel') AS kernel,
       JSONExtractString(inventory, 'os', 'arch') AS arch,
       JSONExtractString(inventory, 'cpu', 'model') AS cpu,
       JSONExtractUInt(inventory, 'cpu', 'cores') AS cores,
       JSONExtractUInt(inventory, 'memory_bytes') AS memory,
       received_at AS reported
FROM tally.host_inventory FINAL
WHERE ${SITE_FILTER}
  AND agent_id IN (SELECT agent_id FROM tally.agents FINAL WHERE revoked_at IS NULL)
ORDER BY site, host`,
  },
]

export const fleet = (): JsonObject =>
  dashboard({
    uid: 'tally-fleet',
    title: 'Tally / Fleet',
    description:
      'Agents online and offline by site, last seen, versions, spool backlog, capture drops.',
    variables: [datasourceVariable, siteVariable],
    panels,
    refresh: '30s',
  })
