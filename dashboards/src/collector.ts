/**
 * Collector: ingest rate, rows per second, latency, rejections, 503s and duplicates recognised,
 * from the collectors' own counters (`tally.collector_metrics`, written every 10 s by
 * collector/self-metrics.ts as increases per snapshot) and from the per-site, per-minute summary
 * of stored batches (`tally.ingest_site_1m`).
 */
import {
  dashboard,
  datasourceVariable,
  type JsonObject,
  type PanelSpec,
  SITE_FILTER,
  siteVariable,
} from './grafana.ts'

/** The sum of a counter's increases over the range. */
const total = (metric: string, where = '') => `SELECT sum(value) AS total
FROM tally.collector_metrics
WHERE $__timeFilter(ts) AND metric = '${metric}'${where}`

/** A counter's increases per second, by a label. */
const rate = (
  metric: string,
  label: string,
  where = '',
) => `SELECT $__timeInterval(ts) AS time, labels['${label}'] AS ${label},
       sum(value) / $__interval_s AS per_second
FROM tally.collector_metrics
WHERE $__timeFilter(ts) AND metric = '${metric}'${where}
GROUP BY time, ${label}
ORDER BY time`

const panels: PanelSpec[] = [
  { type: 'row', title: 'Over the time range' },
  {
    type: 'stat',
    title: 'Batches stored',
    w: 4,
    h: 4,
    baseColor: 'blue',
    sql: total('ingest.batches', ` AND labels['outcome'] = 'stored'`),
  },
  {
    type: 'stat',
    title: 'Duplicates recognised',
    description:
      'Batches an agent sent again (after a lost answer or a crash) that were acknowledged without being stored twice.',
    w: 4,
    h: 4,
    baseColor: 'blue',
    sql: total('ingest.batches', ` AND labels['outcome'] = 'duplicate'`),
  },
  {
    type: 'stat',
    title: 'Rejected (4xx)',
    w: 4,
    h: 4,
    thresholds: [[1, 'orange']],
    sql: total('ingest.rejected'),
  },
  {
    type: 'stat',
    title: '503 answers',
    description: 'Batches the store could not take; agents keep them spooled and retry.',
    w: 4,
    h: 4,
    thresholds: [[1, 'red']],
    sql: total('ingest.unavailable'),
  },
  {
    type: 'stat',
    title: 'Mean ingest latency',
    w: 4,
    h: 4,
    unit: 's',
    thresholds: [
      [0.5, 'orange'],
      [2, 'red'],
    ],
    sql: `SELECT sumIf(value, metric = 'ingest.duration.sum') / nullIf(sumIf(value, metric = 'ingest.duration.count'), 0) AS mean
FROM tally.collector_metrics
WHERE $__timeFilter(ts) AND metric IN ('ingest.duration.sum', 'ingest.duration.count')`,
  },
  {
    type: 'stat',
    title: 'Collector instances',
    description: 'Collectors that wrote their counters in the time range.',
    w: 4,
    h: 4,
    baseColor: 'blue',
    sql: `SELECT uniqExact(instance) AS instances
FROM tally.collector_metrics
WHERE $__timeFilter(ts) AND metric = 'ingest.batches'`,
  },
  { type: 'row', title: 'Ingest' },
  {
    type: 'timeseries',
    title: 'Ingest rate',
    description: 'Batches acknowledged per second, stored or recognised as duplicates.',
    minInterval: '10s',
    unit: 'reqps',
    stack: true,
    seriesLabel: 'outcome',
    sql: rate('ingest.batches', 'outcome'),
  },
  {
    type: 'timeseries',
    title: 'Rows per second',
    description: 'Host samples written to tally.host_metrics per second, by all collectors.',
    minInterval: '10s',
    unit: 'short',
    sql: `SELECT $__timeInterval(ts) AS time, sum(value) / $__interval_s AS rows_per_second
FROM tally.collector_metrics
WHERE $__timeFilter(ts) AND metric = 'ingest.samples'
GROUP BY time
ORDER BY time`,
  },
  {
    type: 'timeseries',
    title: 'Ingest latency',
    description:
      'POST /v1/ingest from request to answer: the highest p50 and p95 any collector saw in the interval (from its histogram), and the mean over all requests.',
    minInterval: '10s',
    unit: 's',
    sql: `SELECT $__timeInterval(ts) AS time,
       maxIfOrNull(value, metric = 'ingest.duration.p50') AS p50,
       maxIfOrNull(value, metric = 'ingest.duration.p95') AS p95,
       sumIf(value, metric = 'ingest.duration.sum') / nullIf(sumIf(value, metric = 'ingest.duration.count'), 0) AS mean
FROM tally.collector_metrics
WHERE $__timeFilter(ts)
  AND metric IN ('ingest.duration.p50', 'ingest.duration.p95', 'ingest.duration.sum', 'ingest.duration.count')
GROUP BY time
ORDER BY time`,
  },
  {
    type: 'timeseries',
    title: 'Rows per second by site',
    description:
      'Host samples in the batches stored per second, by the site that sent them (per minute at least).',
    minInterval: '1m',
    unit: 'short',
    stack: true,
    seriesLabel: 'site',
    sql: `WITH greatest(60, intDiv($__interval_s + 59, 60) * 60) AS step
SELECT toDateTime(intDiv(toUInt32(ts), step) * step) AS time, site, sum(samples) / step AS rows_per_second
FROM tally.ingest_site_1m
WHERE $__timeFilter(ts) AND ${SITE_FILTER}
GROUP BY time, site
ORDER BY time`,
  },
  { type: 'row', title: 'Refusals and retries' },
  {
    type: 'timeseries',
    title: 'Rejections by reason',
    description:
      'Ingest requests refused with a 4xx per interval: too large, unsupported encoding, bad gzip or JSON, a host or site in the body, or a batch not matching protocol v1.',
    w: 8,
    minInterval: '10s',
    bars: true,
    stack: true,
    seriesLabel: 'reason',
    sql: `SELECT $__timeInterval(ts) AS time, labels['reason'] AS reason, sum(value) AS rejected
FROM tally.collector_metrics
WHERE $__timeFilter(ts) AND metric = 'ingest.rejected'
GROUP BY time, reason
ORDER BY time`,
  },
  {
    type: 'timeseries',
    title: '503 answers',
    description:
      'Ingest requests answered 503 because the store failed, and 503s of other routes (readiness), per interval.',
    w: 8,
    minInterval: '10s',
    bars: true,
    stack: true,
    seriesLabel: 'route',
    sql: `SELECT $__timeInterval(ts) AS time,
       if(metric = 'ingest.unavailable', 'ingest (store unavailable)', labels['route']) AS route,
       sum(value) AS answers
FROM tally.collector_metrics
WHERE $__timeFilter(ts)
  AND (metric = 'ingest.unavailable'
       OR (metric = 'http.requests' AND labels['status'] = '503' AND labels['route'] != '/v1/ingest'))
GROUP BY time, route
ORDER BY time`,
  },
  {
    type: 'timeseries',
    title: 'Duplicates recognised',
    description: 'Batches acknowledged as already stored, per interval.',
    w: 8,
    minInterval: '10s',
    bars: true,
    sql: `SELECT $__timeInterval(ts) AS time, sum(value) AS duplicates
FROM tally.collector_metrics
WHERE $__timeFilter(ts) AND metric = 'ingest.batches' AND labels['outcome'] = 'duplicate'
GROUP BY time
ORDER BY time`,
  },
  {
    type: 'timeseries',
    title: 'HTTP answers by status class',
    description: 'Every request the collectors answered, per second.',
    w: 12,
    minInterval: '10s',
    unit: 'reqps',
    stack: true,
    seriesLabel: 'status',
    sql: `SELECT $__timeInterval(ts) AS time, concat(substring(labels['status'], 1, 1), 'xx') AS status,
       sum(value) / $__interval_s AS per_second
FROM tally.collector_metrics
WHERE $__timeFilter(ts) AND metric = 'http.requests'
GROUP BY time, status
ORDER BY time`,
  },
  {
    type: 'table',
    title: 'Collector instances',
    w: 12,
    h: 8,
    sql: `SELECT instance, max(ts) AS last_report,
       sumIf(value, metric = 'ingest.batches') AS batches,
       sumIf(value, metric = 'ingest.samples') AS rows,
       sumIf(value, metric = 'ingest.rejected') AS rejected,
       sumIf(value, metric = 'ingest.unavailable') AS unavailable
FROM tally.collector_metrics
WHERE $__timeFilter(ts)
GROUP BY instance
ORDER BY instance`,
  },
]

export const collector = (): JsonObject =>
  dashboard({
    uid: 'tally-collector',
    title: 'Tally / Collector',
    description: 'Ingest rate, rows per second, latency, rejections, 503s, duplicates recognised.',
    variables: [datasourceVariable, siteVariable],
    panels,
    time: 'now-3h',
    refresh: '30s',
  })
