-- Reads that stay fast as data grows (docs/operators.md "Retention").
--
-- The hourly rollup is ordered by metric first, in small granules: besides one host's series it
-- serves reads of one metric over every host (the top hosts of a panel, every host's latest
-- filesystem), a few rows per host and hour.
--
-- Every dashboard panel picks the table by its step: raw samples under a minute, the per-minute
-- rollup under 30 minutes, the hourly rollup (new here) above; a range that starts before a
-- table's retention reads the next coarser one. So a panel reads about as many rows for 30 days
-- as for one day. The fleet reads one summary row per agent (agent_last_batch) and per site and
-- minute (ingest_site_1m) instead of every batch record ever stored.
--
-- Retention: raw samples 14 days (the oldest batch ingest accepts by default); per-minute 35
-- days; hourly 395 days. Batch records 15 days: they are what makes a resent batch a duplicate,
-- so they must outlive the ingest age limit (ingest.max_batch_age_hours, 14 days by default).
-- The new tables are filled from what is already stored before their views start (each only
-- while it is still empty, so a migration run again after a failure does not count twice), and
-- the per-minute rollup is shortened only after the hourly one holds its history.

CREATE TABLE IF NOT EXISTS tally.host_metrics_1h
(
    ts DateTime('UTC') CODEC(DoubleDelta, ZSTD(1)),
    site LowCardinality(String),
    host LowCardinality(String),
    metric LowCardinality(String),
    series UInt64,
    attributes SimpleAggregateFunction(any, Map(String, String)),
    samples SimpleAggregateFunction(sum, UInt64),
    sum SimpleAggregateFunction(sum, Float64),
    min SimpleAggregateFunction(min, Float64),
    max SimpleAggregateFunction(max, Float64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (metric, site, host, series, ts)
TTL ts + INTERVAL 395 DAY
SETTINGS index_granularity = 1024, non_replicated_deduplication_window = 100000;

INSERT INTO tally.host_metrics_1h (ts, site, host, metric, series, attributes, samples, sum, min, max)
SELECT toStartOfHour(ts) AS hour, site, host, metric, series, any(attributes), sum(samples), sum(sum), min(min), max(max)
FROM tally.host_metrics_1m
WHERE (SELECT count() FROM tally.host_metrics_1h) = 0
GROUP BY hour, site, host, metric, series;

CREATE MATERIALIZED VIEW IF NOT EXISTS tally.host_metrics_1h_mv TO tally.host_metrics_1h AS
SELECT
    hour AS ts,
    site,
    host,
    metric,
    series,
    any(attrs) AS attributes,
    count() AS samples,
    sum(value) AS sum,
    min(value) AS min,
    max(value) AS max
FROM
(
    SELECT toStartOfHour(ts) AS hour, site, host, metric,
        cityHash64(attributes) AS series, attributes AS attrs, value
    FROM tally.host_metrics
)
GROUP BY hour, site, host, metric, series;

-- One row per agent once merged: what the fleet shows of its last batch. An agent's site never
-- changes, so it leads the key and a site's agents are read together.
CREATE TABLE IF NOT EXISTS tally.agent_last_batch
(
    agent_id String,
    site LowCardinality(String),
    batches SimpleAggregateFunction(sum, UInt64),
    last_seq SimpleAggregateFunction(max, UInt64),
    last_received SimpleAggregateFunction(max, DateTime64(3, 'UTC')),
    agent_version AggregateFunction(argMax, String, DateTime64(3, 'UTC')),
    interval_seconds AggregateFunction(argMax, UInt32, DateTime64(3, 'UTC'))
)
ENGINE = AggregatingMergeTree
ORDER BY (site, agent_id)
SETTINGS non_replicated_deduplication_window = 100000;

INSERT INTO tally.agent_last_batch (agent_id, site, batches, last_seq, last_received, agent_version, interval_seconds)
SELECT agent_id, site, count(), max(seq), max(received_at), argMaxState(agent_version, received_at),
       argMaxState(toUInt32(greatest(0, dateDiff('second', interval_start, interval_end))), received_at)
FROM tally.ingest_batches FINAL
WHERE (SELECT count() FROM tally.agent_last_batch) = 0
GROUP BY site, agent_id;

CREATE MATERIALIZED VIEW IF NOT EXISTS tally.agent_last_batch_mv TO tally.agent_last_batch AS
SELECT
    agent_id,
    site,
    count() AS batches,
    max(seq) AS last_seq,
    max(received_at) AS last_received,
    argMaxState(agent_version, received_at) AS agent_version,
    argMaxState(toUInt32(greatest(0, dateDiff('second', interval_start, interval_end))), received_at) AS interval_seconds
FROM tally.ingest_batches
GROUP BY site, agent_id;

-- Batches and samples received per site and minute, and which agents sent them.
CREATE TABLE IF NOT EXISTS tally.ingest_site_1m
(
    ts DateTime('UTC') CODEC(DoubleDelta, ZSTD(1)),
    site LowCardinality(String),
    batches SimpleAggregateFunction(sum, UInt64),
    samples SimpleAggregateFunction(sum, UInt64),
    agents AggregateFunction(uniq, String)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (site, ts)
TTL ts + INTERVAL 395 DAY
SETTINGS non_replicated_deduplication_window = 100000;

INSERT INTO tally.ingest_site_1m (ts, site, batches, samples, agents)
SELECT toStartOfMinute(received_at) AS minute, site, count(), sum(samples), uniqState(agent_id)
FROM tally.ingest_batches FINAL
WHERE (SELECT count() FROM tally.ingest_site_1m) = 0
GROUP BY minute, site;

CREATE MATERIALIZED VIEW IF NOT EXISTS tally.ingest_site_1m_mv TO tally.ingest_site_1m AS
SELECT
    toStartOfMinute(received_at) AS ts,
    site,
    count() AS batches,
    sum(samples) AS samples,
    uniqState(agent_id) AS agents
FROM tally.ingest_batches
GROUP BY ts, site;

ALTER TABLE tally.host_metrics MODIFY TTL toDateTime(ts) + INTERVAL 14 DAY;

ALTER TABLE tally.host_metrics_1m MODIFY TTL ts + INTERVAL 35 DAY;

ALTER TABLE tally.ingest_batches MODIFY TTL toDateTime(received_at) + INTERVAL 15 DAY;

-- Batch records are ordered by (agent_id, seq); a time range skips the granules outside it.
ALTER TABLE tally.ingest_batches ADD INDEX IF NOT EXISTS received_at_minmax received_at TYPE minmax GRANULARITY 1;
