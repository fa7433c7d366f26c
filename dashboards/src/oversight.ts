/**
 * Oversight, for auditors: investigations by state, grants in force, and whether the ITSD
 * register verifies and how old its last signed checkpoint is. Counts and states only, no
 * personal data: no case document, no subject, no grant token, no register entry is read.
 *
 * OIOS cases (bulletin section 9) and OIOS's register are OIOS's alone and invisible to ITSD
 * roles, so nothing here counts them: cases are read by an allowlist of kinds, grants only for
 * cases of those kinds, and the register status is the ITSD register's (the collector records
 * no other, see collector/self-metrics.ts).
 */
import {
  dashboard,
  datasourceVariable,
  type Json,
  type JsonObject,
  type PanelSpec,
} from './grafana.ts'

/** Case kinds ITSD oversees; `oios` is deliberately not one. */
const KINDS = `('standard', 'technical')`

const CASES = `(SELECT kind, state FROM tally.cases FINAL WHERE kind IN ${KINDS})`

const PURPOSE = `multiIf(audience = 'tally-agent', 'capture (agent)',
               audience = 'tally-drilldown', 'drill-down (investigator)', audience)`

/** Grants of ITSD cases, latest version (a revocation is a new row). */
const GRANTS = `(
    SELECT audience, window_start, window_end, issued_at, revoked_at
    FROM tally.grants FINAL
    WHERE case_id IN (SELECT case_id FROM tally.cases FINAL WHERE kind IN ${KINDS})
)`

const IN_FORCE = 'revoked_at IS NULL AND window_start <= now64(3) AND window_end > now64(3)'

/** A recent ITSD register measurement from each collector. */
const REGISTER = (metric: string) =>
  `metric = '${metric}' AND labels['register'] = 'itsd' AND ts > now() - INTERVAL 1 HOUR`

const verifyMappings: Json[] = [
  {
    type: 'value',
    options: {
      '0': { text: 'FAILED', color: 'red', index: 0 },
      '1': { text: 'verified', color: 'green', index: 1 },
    },
  },
  { type: 'special', options: { match: 'null', result: { text: 'not checked', color: 'orange' } } },
]

const panels: PanelSpec[] = [
  { type: 'row', title: 'ITSD register' },
  {
    type: 'stat',
    title: 'Register verifies',
    description:
      'Whether every collector that checked the ITSD register in the last hour found its hash chain, Merkle roots and signed checkpoints intact (Register.verify).',
    w: 6,
    h: 4,
    mappings: verifyMappings,
    sql: `SELECT minOrNull(ok) AS verified
FROM
(
    SELECT instance, argMax(value, ts) AS ok
    FROM tally.collector_metrics
    WHERE ${REGISTER('register.verify.ok')}
    GROUP BY instance
)`,
  },
  {
    type: 'stat',
    title: 'Last checkpoint age',
    description: 'Time since the latest signed checkpoint of the ITSD register.',
    w: 6,
    h: 4,
    unit: 's',
    thresholds: [
      [86_400, 'orange'],
      [7 * 86_400, 'red'],
    ],
    sql: `SELECT argMaxOrNull(value + dateDiff('second', ts, now()), ts) AS age
FROM tally.collector_metrics
WHERE ${REGISTER('register.checkpoint.age_seconds')}`,
  },
  {
    type: 'stat',
    title: 'Entries after the last checkpoint',
    description: 'Entries not yet covered by a signed checkpoint.',
    w: 6,
    h: 4,
    thresholds: [[100, 'orange']],
    sql: `SELECT argMaxIfOrNull(value, ts, metric = 'register.entries')
       - ifNull(argMaxIfOrNull(value, ts, metric = 'register.checkpoint.size'), 0) AS unsigned
FROM tally.collector_metrics
WHERE metric IN ('register.entries', 'register.checkpoint.size')
  AND labels['register'] = 'itsd' AND ts > now() - INTERVAL 1 HOUR`,
  },
  {
    type: 'stat',
    title: 'Last verified',
    description: 'Time since a collector last verified the ITSD register.',
    w: 6,
    h: 4,
    unit: 's',
    thresholds: [[600, 'red']],
    sql: `SELECT dateDiff('second', maxOrNull(ts), now()) AS ago
FROM tally.collector_metrics
WHERE metric = 'register.verify.ok' AND labels['register'] = 'itsd'`,
  },
  {
    type: 'timeseries',
    title: 'Register entries and checkpoints',
    description:
      'Entries in the ITSD register and entries covered by its latest signed checkpoint.',
    w: 8,
    minInterval: '1m',
    sql: `SELECT $__timeInterval(ts) AS time,
       maxIfOrNull(value, metric = 'register.entries') AS entries,
       maxIfOrNull(value, metric = 'register.checkpoint.size') AS checkpointed
FROM tally.collector_metrics
WHERE $__timeFilter(ts) AND metric IN ('register.entries', 'register.checkpoint.size')
  AND labels['register'] = 'itsd'
GROUP BY time
ORDER BY time`,
  },
  {
    type: 'timeseries',
    title: 'Checkpoint age',
    w: 8,
    minInterval: '1m',
    unit: 's',
    sql: `SELECT $__timeInterval(ts) AS time, max(value) AS age
FROM tally.collector_metrics
WHERE $__timeFilter(ts) AND metric = 'register.checkpoint.age_seconds' AND labels['register'] = 'itsd'
GROUP BY time
ORDER BY time`,
  },
  {
    type: 'timeseries',
    title: 'Verification',
    description: '1 when every check in the interval verified, 0 when one failed; problems found.',
    w: 8,
    minInterval: '1m',
    bars: true,
    sql: `SELECT $__timeInterval(ts) AS time,
       minIfOrNull(value, metric = 'register.verify.ok') AS verified,
       maxIfOrNull(value, metric = 'register.verify.problems') AS problems
FROM tally.collector_metrics
WHERE $__timeFilter(ts) AND metric IN ('register.verify.ok', 'register.verify.problems')
  AND labels['register'] = 'itsd'
GROUP BY time
ORDER BY time`,
  },
  { type: 'row', title: 'Investigations' },
  {
    type: 'stat',
    title: 'Open cases',
    description: 'Requested, approved or active ITSD cases.',
    w: 6,
    h: 4,
    baseColor: 'blue',
    sql: `SELECT countIf(state IN ('requested', 'approved', 'active')) AS open FROM ${CASES}`,
  },
  {
    type: 'stat',
    title: 'Active cases',
    description: 'Cases whose notice is on record and whose grants are issued.',
    w: 6,
    h: 4,
    baseColor: 'blue',
    sql: `SELECT countIf(state = 'active') AS active FROM ${CASES}`,
  },
  {
    type: 'stat',
    title: 'Grants in force',
    description: 'Unrevoked grants whose window includes now, for agents and investigators.',
    w: 6,
    h: 4,
    baseColor: 'blue',
    sql: `SELECT count() AS grants FROM ${GRANTS} WHERE ${IN_FORCE}`,
  },
  {
    type: 'stat',
    title: 'Grants ending within a day',
    w: 6,
    h: 4,
    baseColor: 'blue',
    thresholds: [[1, 'orange']],
    sql: `SELECT countIf(window_end <= now64(3) + INTERVAL 1 DAY) AS ending FROM ${GRANTS} WHERE ${IN_FORCE}`,
  },
  {
    type: 'barchart',
    title: 'Cases by state',
    w: 12,
    h: 9,
    options: { xField: 'state' },
    sql: `SELECT state, countIf(kind = 'standard') AS standard, countIf(kind = 'technical') AS technical
FROM ${CASES}
GROUP BY state
ORDER BY state`,
  },
  {
    type: 'table',
    title: 'Grants in force',
    w: 12,
    h: 9,
    overrides: [
      {
        matcher: { id: 'byName', options: 'next_end' },
        properties: [{ id: 'displayName', value: 'first to end' }],
      },
    ],
    sql: `SELECT ${PURPOSE} AS purpose, count() AS grants, min(window_end) AS next_end
FROM ${GRANTS}
WHERE ${IN_FORCE}
GROUP BY purpose
ORDER BY purpose`,
  },
  {
    type: 'timeseries',
    title: 'Grants issued',
    w: 24,
    minInterval: '1h',
    bars: true,
    stack: true,
    seriesLabel: 'purpose',
    sql: `SELECT $__timeInterval(issued_at) AS time, ${PURPOSE} AS purpose, count() AS grants
FROM ${GRANTS}
WHERE $__timeFilter(issued_at)
GROUP BY time, purpose
ORDER BY time`,
  },
]

export const oversight = (): JsonObject =>
  dashboard({
    uid: 'tally-oversight',
    title: 'Tally / Oversight',
    description:
      'For auditors: cases by state, grants in force, ITSD register checkpoint age and verification. No personal data; nothing of OIOS.',
    variables: [datasourceVariable],
    panels,
    time: 'now-7d',
  })
