/**
 * Which host metrics table a panel reads, chosen in SQL from Grafana's step (`$__interval_s`)
 * and the range's start, so a panel reads about as many rows for 30 days as for one hour:
 *
 * - raw samples (`tally.host_metrics`) for steps under a minute, while the range starts within
 *   their retention;
 * - the per-minute rollup (`tally.host_metrics_1m`) for steps under 30 minutes, likewise;
 * - the hourly rollup (`tally.host_metrics_1h`) otherwise.
 *
 * The step is rounded up to the resolution of the table read (Grafana's 1,800 s becomes an hour
 * on the hourly table), so every bucket holds whole rollup rows. The three branches are one
 * UNION ALL whose conditions are constants once the macros are expanded: the engine reads
 * the chosen table only. Rollup rows are read as stored: a minute or an hour may still be in
 * several parts, which sums, minimums and maximums do not mind (merging them at read time, with
 * FINAL or a GROUP BY, cost 4 to 8 times as much on the per-minute table).
 *
 * Every branch yields (names from the first): ts (DateTime), site, host, metric, attributes
 * (Map(String, String)), samples, sum, min, max, last (the sample itself, or the mean of the
 * row's part of its period), covered_ms (a sample's interval; 0 for a rollup row) and period_ms
 * (0 for a sample; the row's period). So a gauge's mean is sum(sum) / sum(samples) and a
 * counter's rate sum(sum) * 1000 / COVERED_MS, whatever the table.
 *
 * The retentions here are the tables' TTLs (migration 012); a test compares them.
 */

export const RETENTION_DAYS = { raw: 14, minute: 35, hour: 395 } as const
/** Steps from this many seconds read the per-minute rollup, then the hourly one. */
export const MINUTE_FROM_S = 60
export const HOUR_FROM_S = 1800

const DAY_S = 86_400
const STEP = '$__interval_s'
const FROM_S = 'toUInt32($__fromTime)'
const within = (days: number) => `${FROM_S} >= toUInt32(now()) - ${days * DAY_S}`

export const READS_RAW = `(${STEP} < ${MINUTE_FROM_S} AND ${within(RETENTION_DAYS.raw)})`
export const READS_MINUTE = `(NOT ${READS_RAW} AND ${STEP} < ${HOUR_FROM_S} AND ${within(RETENTION_DAYS.minute)})`
export const READS_HOUR = `(NOT ${READS_RAW} AND NOT ${READS_MINUTE})`

const roundUp = (unit: number) => `intDiv(${STEP} + ${unit - 1}, ${unit}) * ${unit}`

/** The bucket width in seconds: the step, rounded up to the resolution of the table read. */
export const BUCKET_S = `multiIf(${READS_RAW}, ${STEP}, ${READS_MINUTE}, ${roundUp(60)}, ${roundUp(3600)})`

/** `WITH` clause naming the bucket width `step`. */
export const WITH_STEP = `WITH ${BUCKET_S} AS step`

/** A row's bucket: its time rounded down to `step`. */
export const BUCKET = 'toDateTime(intDiv(toUInt32(ts), step) * step)'

const rollup = (table: string, reads: string, periodMs: number, where: string) => `
    SELECT ts, site, host, metric, attributes, samples, sum, min, max, sum / samples AS period_mean,
           toUInt64(0) AS no_interval, toUInt64(${periodMs}) AS period
    FROM ${table}
    WHERE ${reads} AND $__timeFilter(ts) AND ${where}`

/**
 * The time a group of one series' rows accounts for, in ms, to turn the increases of a counter
 * into a rate: the samples' intervals, or as many whole periods as the group has distinct ones
 * (a rollup row may come in several parts until the engine merges them, so its rows are not
 * counted).
 */
export const COVERED_MS = 'if(max(period_ms) = 0, sum(covered_ms), uniqExact(ts) * max(period_ms))'

/**
 * Host samples matching `where` (a condition on site, host, metric and attributes) in the
 * range, from the table the step and range call for.
 */
export const hostSamples = (where: string): string => `(
    SELECT toDateTime(ts) AS ts, site, host, metric,
           CAST(attributes, 'Map(String, String)') AS attributes, toUInt64(1) AS samples,
           value AS sum, value AS min, value AS max, value AS last, toUInt64(interval_ms) AS covered_ms,
           toUInt64(0) AS period_ms
    FROM tally.host_metrics
    WHERE ${READS_RAW} AND $__timeFilter(ts) AND ${where}
    UNION ALL${rollup('tally.host_metrics_1m', READS_MINUTE, 60_000, where)}
    UNION ALL${rollup('tally.host_metrics_1h', READS_HOUR, 3_600_000, where)}
)`

/** Series panels show this many hosts at most: the top ones by the panel's own measure. */
export const TOP_HOSTS = 10

/**
 * The hourly rows of the whole hours the range overlaps: what a panel ranks hosts by, and what
 * a table of every host's latest state reads, at a few rows per host whatever the range.
 */
export const HOURS_OF_RANGE = 'ts >= toStartOfHour($__fromTime) AND ts <= $__toTime'

/**
 * Host samples matching `where`, of the TOP_HOSTS hosts with the highest `measure` (an
 * aggregate over the hourly table's columns: sum, samples, min, max) over the whole hours the
 * range overlaps. Ranking on the hourly table keeps it to a few rows per host; the series are
 * then read for those hosts only.
 */
export const topHostSamples = (where: string, measure: string): string =>
  hostSamples(`${where}
      AND (site, host) IN
      (
          SELECT site, host FROM tally.host_metrics_1h
          WHERE ${HOURS_OF_RANGE} AND ${where}
          GROUP BY site, host
          ORDER BY ${measure} DESC, site, host
          LIMIT ${TOP_HOSTS}
      )`)
