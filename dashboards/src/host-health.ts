/**
 * Host health: one host's CPU, memory, load, filesystems, interfaces and TCP connection states,
 * and an overview of the busiest hosts of the site. Tier T, from the host metrics table the step
 * calls for (raw, per minute or hourly: ./rollups.ts). Counters (interface bytes, packets,
 * errors, drops) are per-interval increases, so a rate is their sum over the time the samples
 * cover (rollups.ts, COVERED_MS). Panels over every host show the top ten.
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
import {
  BUCKET,
  COVERED_MS,
  HOURS_OF_RANGE,
  hostSamples,
  TOP_HOSTS,
  topHostSamples,
  WITH_STEP,
} from './rollups.ts'

/** The selected host (the site filter too: a host name may repeat in another site). */
const THIS_HOST = `${SITE_FILTER} AND host = ${HOST}`

/** One gauge's average per interval and label, for the selected host. */
const gauge = (metric: string, label: string, extra = '') => `${WITH_STEP}
SELECT ${BUCKET} AS time, ${label}, sum(sum) / sum(samples) AS average
FROM ${hostSamples(`metric = '${metric}' AND ${THIS_HOST}${extra}`)}
GROUP BY time, ${label.replace(/.* AS /, '')}
ORDER BY time`

/** The value last reported in the range, of the samples matching `where`. */
const latest = (alias: string, where: string, expression = `argMax(last, ts)`) =>
  `SELECT ${expression} AS ${alias}
FROM ${hostSamples(where)}`

/** A counter's rate per interval and label, for the selected host. */
const rate = (label: string, alias: string, where: string, scale = '1000') => `${WITH_STEP}
SELECT ${BUCKET} AS time, ${label}, sum(sum) * ${scale} / ${COVERED_MS} AS ${alias}
FROM ${hostSamples(`${where} AND ${THIS_HOST}`)}
GROUP BY time, ${label.replace(/[\s\S]* AS /, '')}
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
    sql: latest(
      'busy',
      `metric = 'system.cpu.utilization' AND attributes['cpu.mode'] = 'idle' AND ${THIS_HOST}`,
      '1 - argMax(last, ts)',
    ),
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
    sql: latest('used', `metric = 'system.memory.utilization' AND ${THIS_HOST}`),
  },
  {
    type: 'stat',
    title: 'Load (1 min)',
    w: 4,
    h: 4,
    decimals: 2,
    baseColor: 'blue',
    sql: latest('load', `metric = 'system.cpu.load_average.1m' AND ${THIS_HOST}`),
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
    SELECT attributes['system.filesystem.mountpoint'] AS mount, argMax(last, ts) AS latest
    FROM ${hostSamples(`metric = 'system.filesystem.utilization' AND ${THIS_HOST}`)}
    GROUP BY mount
)`,
  },
  {
    type: 'stat',
    title: 'Established TCP connections',
    w: 4,
    h: 4,
    baseColor: 'blue',
    sql: latest(
      'established',
      `metric = 'system.network.connection.count' AND attributes['network.connection.state'] = 'established' AND ${THIS_HOST}`,
    ),
  },
  {
    type: 'stat',
    title: 'Uptime',
    w: 4,
    h: 4,
    unit: 's',
    baseColor: 'blue',
    sql: latest('uptime', `metric = 'system.uptime' AND ${THIS_HOST}`),
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
    sql: `${WITH_STEP}
SELECT ${BUCKET} AS time, replaceOne(metric, 'system.cpu.load_average.', '') AS window,
       sum(sum) / sum(samples) AS load
FROM ${hostSamples(`metric IN ('system.cpu.load_average.1m', 'system.cpu.load_average.5m', 'system.cpu.load_average.15m')
  AND ${THIS_HOST}`)}
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
       argMaxIf(last, ts, metric = 'system.filesystem.limit') AS size,
       argMaxIf(last, ts, metric = 'system.filesystem.usage' AND attributes['system.filesystem.state'] = 'used') AS used,
       argMaxIf(last, ts, metric = 'system.filesystem.usage' AND attributes['system.filesystem.state'] = 'free') AS free,
       argMaxIf(last, ts, metric = 'system.filesystem.utilization') AS utilization
FROM ${hostSamples(`metric IN ('system.filesystem.limit', 'system.filesystem.usage', 'system.filesystem.utilization')
  AND ${THIS_HOST}`)}
GROUP BY mountpoint, device, type
ORDER BY mountpoint`,
  },
  {
    type: 'timeseries',
    title: 'Interface throughput',
    minInterval: '10s',
    unit: 'bps',
    seriesLabel: 'interface',
    sql: rate(
      `${interfaceLabel} AS interface`,
      'bits_per_second',
      `metric = 'system.network.io'`,
      '8000',
    ),
  },
  {
    type: 'timeseries',
    title: 'Interface packets',
    minInterval: '10s',
    unit: 'pps',
    seriesLabel: 'interface',
    sql: rate(
      `${interfaceLabel} AS interface`,
      'packets_per_second',
      `metric = 'system.network.packet.count'`,
    ),
  },
  {
    type: 'timeseries',
    title: 'Interface errors and drops',
    description: 'Receive and transmit errors and dropped packets per second, per interface.',
    minInterval: '10s',
    unit: 'pps',
    seriesLabel: 'series',
    sql: rate(
      `concat(${interfaceLabel}, ' ', if(metric = 'system.network.errors', 'errors', 'dropped')) AS series`,
      'per_second',
      `metric IN ('system.network.errors', 'system.network.packet.dropped')`,
    ),
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
    description: `The ${TOP_HOSTS} busiest hosts over the time range.`,
    minInterval: '1m',
    unit: 'percentunit',
    min: 0,
    max: 1,
    seriesLabel: 'agent',
    sql: `${WITH_STEP}
SELECT ${BUCKET} AS time, concat(site, '/', host) AS agent, 1 - sum(sum) / sum(samples) AS busy
FROM ${topHostSamples(
      `metric = 'system.cpu.utilization' AND attributes['cpu.mode'] = 'idle' AND ${SITE_FILTER}`,
      '-sum(sum) / sum(samples)',
    )}
GROUP BY time, agent
ORDER BY time`,
  },
  {
    type: 'timeseries',
    title: 'Memory used by host',
    description: `The ${TOP_HOSTS} hosts with the most memory used over the time range.`,
    minInterval: '1m',
    unit: 'percentunit',
    min: 0,
    max: 1,
    seriesLabel: 'agent',
    sql: `${WITH_STEP}
SELECT ${BUCKET} AS time, concat(site, '/', host) AS agent, sum(sum) / sum(samples) AS used
FROM ${topHostSamples(`metric = 'system.memory.utilization' AND ${SITE_FILTER}`, 'sum(sum) / sum(samples)')}
GROUP BY time, agent
ORDER BY time`,
  },
  {
    type: 'table',
    title: 'Fullest filesystem per host',
    description:
      'The 50 fullest hosts: each filesystem as in its last reported hour of the time range (the mean of that hour).',
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
    SELECT site, host, any(attributes)['system.filesystem.mountpoint'] AS mount,
           argMax(sum / samples, ts) AS latest
    FROM tally.host_metrics_1h
    WHERE ${HOURS_OF_RANGE} AND metric = 'system.filesystem.utilization' AND ${SITE_FILTER}
    GROUP BY site, host, series
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
