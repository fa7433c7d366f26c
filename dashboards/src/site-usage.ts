/**
 * Site usage (tier A): traffic of a site, or of every site, over time by service, peer class,
 * transport, IP version and direction, and the top services. Every panel reads the k views
 * `tally.usage_by_<grouping>(site, from, to, step)` and nothing else (grafana_ro may read no
 * usage table): they sum released minute cells, each of at least k hosts, or a site's `other`
 * cell of that minute when it reaches k (collector/store/usage.ts).
 *
 * The range is widened to whole steps (from rounded down, to up) so every step holds whole
 * minutes; panels ask for at least a minute per step (minimum interval 1m), steps of 30 minutes
 * and more are rounded up to whole hours, and the top services widen to whole hours, so that
 * long ranges are read from the hourly table.
 */
import {
  dashboard,
  datasourceVariable,
  type JsonObject,
  type PanelSpec,
  SITE,
  siteVariable,
} from './grafana.ts'

type Grouping = 'service' | 'peer_class' | 'transport' | 'ip_version' | 'direction'

/**
 * The step: the panel's interval rounded up to whole minutes, and to whole hours from 30 minutes
 * on (Grafana's 1,800 s for 30 days), so that long ranges are read from the hourly table: the
 * views read it only when the step and both ends are whole hours.
 */
const STEP = `if($__interval_s >= 1800, intDiv($__interval_s + 3599, 3600) * 3600, intDiv($__interval_s + 59, 60) * 60)`

/** The view call for one grouping, in steps of the panel's interval (STEP). */
const view = (by: Grouping) => `tally.usage_by_${by}(
    site = ${SITE},
    from = toDateTime(intDiv(toUInt32($__fromTime), ${STEP}) * ${STEP}),
    to = toDateTime((intDiv(toUInt32($__toTime), ${STEP}) + 1) * ${STEP}),
    step = toUInt32(${STEP}))`

/** The view call with one step over the whole range, widened to whole hours. */
const wholeRange = (by: Grouping) => `tally.usage_by_${by}(
    site = ${SITE},
    from = toDateTime(intDiv(toUInt32($__fromTime), 3600) * 3600),
    to = toDateTime((intDiv(toUInt32($__toTime), 3600) + 1) * 3600),
    step = toUInt32((intDiv(toUInt32($__toTime), 3600) + 1 - intDiv(toUInt32($__fromTime), 3600)) * 3600))`

const throughput = (by: Grouping, label: string, title: string, w = 12): PanelSpec => ({
  type: 'timeseries',
  title,
  description: `Bits per second by ${by.replace('_', ' ')}, summed over the selected site(s). Each minute, values of fewer than k hosts are folded into "other", shown only when it reaches k itself.`,
  w,
  h: 9,
  minInterval: '1m',
  unit: 'bps',
  stack: true,
  seriesLabel: 'series',
  sql: `SELECT ts AS time, ${label} AS series, sum(bytes) * 8 / ${STEP} AS bits_per_second
FROM ${view(by)}
GROUP BY time, series
ORDER BY time`,
})

const panels: PanelSpec[] = [
  {
    type: 'text',
    title: 'About these numbers',
    w: 24,
    h: 3,
    content:
      'Site-level sums only: the collector keeps no per-host usage. Each minute, a cell (a service, direction, IP version, transport and peer class) of a site is shown only when at least **k** distinct hosts of the site sent traffic in it; the others are summed into **other**, shown only when it reaches k itself. Every panel sums the same released minutes, so longer steps show no more detail, and the last minutes appear once released (10 minutes by default). Bits per second count frames as captured (their length on the wire).',
  },
  { type: 'row', title: 'Throughput' },
  throughput('service', 'service', 'By service', 24),
  throughput('peer_class', 'peer_class', 'By peer class'),
  throughput('transport', 'transport', 'By transport'),
  throughput(
    'ip_version',
    `if(ip_version = 'other', 'other', concat('IPv', ip_version))`,
    'By IP version',
  ),
  throughput('direction', 'direction', 'By direction'),
  { type: 'row', title: 'Top services' },
  {
    type: 'table',
    title: 'Top services',
    description:
      'The services that carried the most bytes over the whole range, widened to whole hours: the sum of the released minute cells.',
    w: 24,
    h: 10,
    overrides: [
      {
        matcher: { id: 'byName', options: 'bytes' },
        properties: [
          { id: 'unit', value: 'bytes' },
          { id: 'custom.cellOptions', value: { type: 'gauge', mode: 'basic' } },
        ],
      },
      {
        matcher: { id: 'byName', options: 'packets' },
        properties: [{ id: 'unit', value: 'short' }],
      },
      {
        matcher: { id: 'byName', options: 'flows' },
        properties: [
          { id: 'unit', value: 'short' },
          { id: 'displayName', value: 'new flows' },
        ],
      },
    ],
    sql: `SELECT service, sum(bytes) AS bytes, sum(packets) AS packets, sum(flows) AS flows,
       sum(hosts) AS hosts
FROM ${wholeRange('service')}
GROUP BY service
ORDER BY bytes DESC
LIMIT 20`,
  },
  {
    type: 'timeseries',
    title: 'New flows by service',
    description: 'Conversations started per second, by service.',
    w: 24,
    h: 9,
    minInterval: '1m',
    unit: 'short',
    stack: true,
    seriesLabel: 'series',
    sql: `SELECT ts AS time, service AS series, sum(flows) / ${STEP} AS flows_per_second
FROM ${view('service')}
GROUP BY time, series
ORDER BY time`,
  },
]

export const siteUsage = (): JsonObject =>
  dashboard({
    uid: 'tally-site-usage',
    title: 'Tally / Site usage',
    description:
      'Tier A, through the k views only: throughput by service, peer class, transport, IP version, direction; top services.',
    variables: [datasourceVariable, siteVariable],
    panels,
  })
