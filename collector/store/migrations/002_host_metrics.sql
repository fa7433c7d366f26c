-- Tier T. Every insert carries a deduplication token made of (agent_id, seq), and each table
-- keeps a window of recent tokens, so a batch retried after a crash is written once, also into
-- the rollup its materialized view feeds.

CREATE TABLE IF NOT EXISTS tally.ingest_batches
(
    agent_id String,
    seq UInt64,
    site LowCardinality(String),
    host String,
    agent_version LowCardinality(String),
    interval_start DateTime64(3, 'UTC'),
    interval_end DateTime64(3, 'UTC'),
    received_at DateTime64(3, 'UTC'),
    samples UInt32
)
ENGINE = ReplacingMergeTree(received_at)
ORDER BY (agent_id, seq)
SETTINGS non_replicated_deduplication_window = 100000;

CREATE TABLE IF NOT EXISTS tally.host_metrics
(
    ts DateTime64(3, 'UTC') CODEC(DoubleDelta, ZSTD(1)),
    interval_ms UInt32 CODEC(T64, ZSTD(1)),
    site LowCardinality(String),
    host LowCardinality(String),
    metric LowCardinality(String),
    attributes Map(LowCardinality(String), String),
    value Float64 CODEC(Gorilla, ZSTD(1)),
    agent_id LowCardinality(String),
    seq UInt64 CODEC(Delta, ZSTD(1))
)
ENGINE = MergeTree
PARTITION BY toYYYYMMDD(ts)
ORDER BY (site, host, metric, ts)
TTL toDateTime(ts) + INTERVAL 30 DAY
SETTINGS non_replicated_deduplication_window = 100000;

-- One row per series and minute. A series is a metric with its attributes; `series` hashes the
-- attributes because a Map cannot be part of a sorting key.
CREATE TABLE IF NOT EXISTS tally.host_metrics_1m
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
ORDER BY (site, host, metric, series, ts)
TTL ts + INTERVAL 395 DAY
SETTINGS non_replicated_deduplication_window = 100000;

CREATE MATERIALIZED VIEW IF NOT EXISTS tally.host_metrics_1m_mv TO tally.host_metrics_1m AS
SELECT
    minute AS ts,
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
    SELECT toStartOfMinute(ts) AS minute, site, host, metric,
        cityHash64(attributes) AS series, attributes AS attrs, value
    FROM tally.host_metrics
)
GROUP BY minute, site, host, metric, series;

CREATE TABLE IF NOT EXISTS tally.host_inventory
(
    agent_id String,
    site LowCardinality(String),
    host String,
    received_at DateTime64(3, 'UTC'),
    inventory String
)
ENGINE = ReplacingMergeTree(received_at)
ORDER BY agent_id;
