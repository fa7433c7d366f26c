/**
 * Host health: one host's CPU, memory, load, filesystems, interfaces and TCP connection states,
 * and an overview of every host of the site. Tier T, from the raw samples (`tally.host_metrics`,
 * 30 days). Counters (interface bytes, packets, errors, drops) are per-interval increases, so a
 * rate is their sum over the time the samples cover: sum(value) / sum(interval_ms).
 */
import {
  dashboard,
  datasourceVariable,
  HOST,
  hostVariable,
  type JsonObject,
  type PanelSpec,
  SITE_FILTER,
  siteVariable,
} from './grafana.ts'

/** The selected host (the site filter too: a host name may repeat in another site). */
const THIS_HOST = `${SITE_FILTER} AND host = ${HOST}`

/** One gauge's average per interval and label, for the selected host. */
const gauge = (
  metric: string,
  label: string,
  extra = '',
) => `SELECT $__timeInterval(ts) AS time, ${label}, avg(value) AS average
FROM tally.host_metrics
WHERE $__timeFilter(ts) AND metric = '${metric}' AND ${THIS_HOST}${extra}
GROUP BY time, ${label.replace(/.* AS /, '')}
ORDER BY time`

const interfaceLabel = `concat(attributes['network.interface.name'], ' ', attributes['network.io.direction'])`

const panels: PanelSpec[] = [
  { type: 'row', title: 'Host $host' },
  {
    type: 'stat',
    title: 'CPU busy',
    description: 'Share of CPU time not idle, over the last interval reported.',
    w: 4,
    h: 4,
    unit: 'percentunit',
    decimals: 0,
    thresholds: [
      [0.8, 'orange'],
      [0.95, 'red'],
    ],
    sql: `SELECT 1 - argMax(value, ts) AS busy
FROM tally.host_metrics
WHERE $__timeFilter(ts) AND metric = 'system.cpu.utilization' AND attributes['cpu.mode'] = 'idle'
  AND ${THIS_HOST}`,
  },
  {
    type: 'stat',
    title: 'Memory used',
    w: 4,
    h: 4,
    unit: 'percentunit',
    decimals: 0,
    thresholds: [
      [0.85, 'orange'],
      [0.95, 'red'],
    ],
    sql: `SELECT argMax(value, ts) AS used
FROM tally.host_metrics
WHERE $__timeFilter(ts) AND metric = 'system.memory.utilization' AND ${THIS_HOST}`,
  },
  {
    type: 'stat',
    title: 'Load (1 min)',
    w: 4,
    h: 4,
    decimals: 2,
    baseColor: 'blue',
    sql: `SELECT argMax(value, ts) AS load
FROM tally.host_metrics
WHERE $__timeFilter(ts) AND metric = 'system.cpu.load_average.1m' AND ${THIS_HOST}`,
  },
  {
    type: 'stat',
    title: 'Fullest filesystem',
    w: 4,
    h: 4,
    unit: 'percentunit',
    decimals: 0,
    thresholds: [
      [0.85, 'orange'],
      [0.95, 'red'],
    ],
    sql: `SELECT max(latest) AS utilization
FROM
(
    SELECT attributes['system.filesystem.mountpoint'] AS mount, argMax(value, ts) AS latest
    FROM tally.host_metrics
    WHERE $__timeFilter(ts) AND metric = 'system.filesystem.utilization' AND ${THIS_HOST}
    GROUP BY mount
)`,
  },
  {
    type: 'stat',
    title: 'Established TCP connections',
    w: 4,
    h: 4,
    baseColor: 'blue',
    sql: `SELECT argMax(value, ts) AS established
FROM tally.host_metrics
WHERE $__timeFilter(ts) AND metric = 'system.network.connection.count'
  AND attributes['network.connection.state'] = 'established' AND ${THIS_HOST}`,
  },
  {
    type: 'stat',
    title: 'Uptime',
    w: 4,
    h: 4,
    unit: 's',
    baseColor: 'blue',
    sql: `SELECT argMax(value, ts) AS uptime
FROM tally.host_metrics
WHERE $__timeFilter(ts) AND metric = 'system.uptime' AND ${THIS_HOST}`,
  },
  {
    type: 'timeseries',
    title: 'CPU by mode',
    description: 'Share of CPU time per mode (idle left out), stacked.',
    minInterval: '10s',
    unit: 'percentunit',
    stack: true,
    min: 0,
    seriesLabel: 'mode',
    sql: gauge(
      'system.cpu.utilization',
      `attributes['cpu.mode'] AS mode`,
      ` AND attributes['cpu.mode'] != 'idle'`,
    ),
  },
  {
    type: 'timeseries',
    title: 'Memory',
    description: 'Used, buffers, cached and free add up to the total; available is left out.',
    minInterval: '10s',
    unit: 'bytes',
    stack: true,
    seriesLabel: 'state',
    sql: gauge(
      'system.memory.usage',
      `attributes['system.memory.state'] AS state`,
      ` AND attributes['system.memory.state'] != 'available'`,
    ),
  },
  {
    type: 'timeseries',
    title: 'Load average',
    minInterval: '10s',
    decimals: 2,
    seriesLabel: 'window',
    sql: `SELECT $__timeInterval(ts) AS time, replaceOne(metric, 'system.cpu.load_average.', '') AS window,
       avg(value) AS load
FROM tally.host_metrics
WHERE $__timeFilter(ts)
  AND metric IN ('system.cpu.load_average.1m', 'system.cpu.load_average.5m', 'system.cpu.load_average.15m')
  AND ${THIS_HOST}
GROUP BY time, window
ORDER BY time`,
  },
  {
    type: 'timeseries',
    title: 'Filesystem utilisation',
    minInterval: '1m',
    unit: 'percentunit',
    min: 0,
    max: 1,
    seriesLabel: 'mountpoint',
    sql: gauge(
      'system.filesystem.utilization',
      `attributes['system.filesystem.mountpoint'] AS mountpoint`,
    ),
  },
  {
    type: 'table',
    title: 'Filesystems',
    description: 'Each filesystem as last reported in the time range.',
    w: 24,
    h: 7,
    overrides: [
      {
        matcher: { id: 'byRegexp', options: '^(size|used|free)$' },
        properties: [{ id: 'unit', value: 'bytes' }],
      },
      {
        matcher: { id: 'byName', options: 'utilization' },
        properties: [
          { id: 'unit', value: 'percentunit' },
          { id: 'custom.cellOptions', value: { type: 'gauge', mode: 'basic' } },
          { id: 'max', value: 1 },
        ],
      },
    ],
    thresholds: [
      [0.85, 'orange'],
      [0.95, 'red'],
    ],
    sql: `SELECT attributes['system.filesystem.mountpoint'] AS mountpoint,
       attributes['system.device'] AS device,
       attributes['system.filesystem.type'] AS type,
       argMaxIf(value, ts, metric = 'system.filesystem.limit') AS size,
       argMaxIf(value, ts, metric = 'system.filesystem.usage' AND attributes['system.filesystem.state'] = 'used') AS used,
       argMaxIf(value, ts, metric = 'system.filesystem.usage' AND attributes['system.filesystem.state'] = 'free') AS free,
       argMaxIf(value, ts, metric = 'system.filesystem.utilization') AS utilization
FROM tally.host_metrics
WHERE $__timeFilter(ts)
  AND metric IN ('system.filesystem.limit', 'system.filesystem.usage', 'system.filesystem.utilization')
  AND ${THIS_HOST}
GROUP BY mountpoint, device, type
ORDER BY mountpoint`,
  },
  {
    type: 'timeseries',
    title: 'Interface throughput',
    minInterval: '10s',
    unit: 'bps',
    seriesLabel: 'interface',
    sql: `SELECT $__timeInterval(ts) AS time, ${interfaceLabel} AS interface,
       sum(value) * 8000 / sum(interval_ms) AS bits_per_second
FROM tally.host_metrics
WHERE $__timeFilter(ts) AND metric = 'system.network.io' AND ${THIS_HOST}
GROUP BY time, interface
ORDER BY time`,
  },
  {
    type: 'timeseries',
    title: 'Interface packets',
    minInterval: '10s',
    unit: 'pps',
    seriesLabel: 'interface',
    sql: `SELECT $__timeInterval(ts) AS time, ${interfaceLabel} AS interface,
       sum(value) * 1000 / sum(interval_ms) AS packets_per_second
FROM tally.host_metrics
WHERE $__timeFilter(ts) AND metric = 'system.network.packet.count' AND ${THIS_HOST}
GROUP BY time, interface
ORDER BY time`,
  },
  {
    type: 'timeseries',
    title: 'Interface errors and drops',
    description: 'Receive and transmit errors and dropped packets per second, per interface.',
    minInterval: '10s',
    unit: 'pps',
    seriesLabel: 'series',
    sql: `SELECT $__timeInterval(ts) AS time,
       concat(${interfaceLabel}, ' ', if(metric = 'system.network.errors', 'errors', 'dropped')) AS series,
       sum(value) * 1000 / sum(interval_ms) AS per_second
FROM tally.host_metrics
WHERE $__timeFilter(ts) AND metric IN ('system.network.errors', 'system.network.packet.dropped')
  AND ${THIS_HOST}
GROUP BY time, series
ORDER BY time`,
  },
  {
    type: 'timeseries',
    title: 'TCP connections by state',
    description: 'Counts only: the agent reads states, never endpoints.',
    minInterval: '10s',
    stack: true,
    seriesLabel: 'state',
    sql: gauge(
      'system.network.connection.count',
      `attributes['network.connection.state'] AS state`,
    ),
  },
  { type: 'row', title: 'Every host of the site' },
  {
    type: 'timeseries',
    title: 'CPU busy by host',
    minInterval: '1m',
    unit: 'percentunit',
    min: 0,
    max: 1,
    seriesLabel: 'agent',
    sql: `SELECT $__timeInterval(ts) AS time, concat(site, '/', host) AS agent, 1 - avg(value) AS busy
FROM tally.host_metrics
WHERE $__timeFilter(ts) AND metric = 'system.cpu.utilization' AND attributes['cpu.mode'] = 'idle'
  AND ${SITE_FILTER}
GROUP BY time, agent
ORDER BY time`,
  },
  {
    type: 'timeseries',
    title: 'Memory used by host',
    minInterval: '1m',
    unit: 'percentunit',
    min: 0,
    max: 1,
    seriesLabel: 'agent',
    sql: `SELECT $__timeInterval(ts) AS time, concat(site, '/', host) AS agent, avg(value) AS used
FROM tally.host_metrics
WHERE $__timeFilter(ts) AND metric = 'system.memory.utilization' AND ${SITE_FILTER}
GROUP BY time, agent
ORDER BY time`,
  },
  {
    type: 'table',
    title: 'Fullest filesystem per host',
    w: 24,
    h: 8,
    overrides: [
      {
        matcher: { id: 'byName', options: 'utilization' },
        properties: [
          { id: 'unit', value: 'percentunit' },
          { id: 'custom.cellOptions', value: { type: 'gauge', mode: 'basic' } },
          { id: 'max', value: 1 },
        ],
      },
    ],
    thresholds: [
      [0.85, 'orange'],
      [0.95, 'red'],
    ],
    sql: `SELECT site, host, argMax(mount, latest) AS mountpoint, max(latest) AS utilization
FROM
(
    SELECT site, host, attributes['system.filesystem.mountpoint'] AS mount, argMax(value, ts) AS latest
    FROM tally.host_metrics
    WHERE $__timeFilter(ts) AND metric = 'system.filesystem.utilization' AND ${SITE_FILTER}
    GROUP BY site, host, mount
)
GROUP BY site, host
ORDER BY utilization DESC
LIMIT 50`,
  },
]

export const hostHealth = (): JsonObject =>
  dashboard({
    uid: 'tally-host-health',
    title: 'Tally / Host health',
    description:
      'Per host: CPU, memory, load, filesystems, interface throughput, errors and drops, TCP states.',
    variables: [datasourceVariable, siteVariable, hostVariable],
    panels,
    time: 'now-3h',
  })
