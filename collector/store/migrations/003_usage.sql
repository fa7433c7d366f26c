-- Tier A. Agents' per-host contributions go into a Null table: nothing per host is kept. Its
-- materialized views write site-level sums and, as an aggregate state, how many distinct hosts
-- contributed, at three resolutions. Reads go through the k-threshold views the collector
-- creates at start (see collector/store/usage.ts), never to these tables directly.

CREATE TABLE IF NOT EXISTS tally.usage_contributions
(
    ts DateTime('UTC'),
    site LowCardinality(String),
    host String,
    direction LowCardinality(String),
    ip_version UInt8,
    transport LowCardinality(String),
    service LowCardinality(String),
    peer_class LowCardinality(String),
    bytes UInt64,
    packets UInt64,
    flows UInt64
)
ENGINE = Null;

CREATE TABLE IF NOT EXISTS tally.usage_site
(
    ts DateTime('UTC') CODEC(DoubleDelta, ZSTD(1)),
    site LowCardinality(String),
    direction LowCardinality(String),
    ip_version UInt8,
    transport LowCardinality(String),
    service LowCardinality(String),
    peer_class LowCardinality(String),
    bytes SimpleAggregateFunction(sum, UInt64),
    packets SimpleAggregateFunction(sum, UInt64),
    flows SimpleAggregateFunction(sum, UInt64),
    hosts AggregateFunction(uniq, String)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMMDD(ts)
ORDER BY (site, ts, direction, ip_version, transport, service, peer_class)
TTL ts + INTERVAL 7 DAY
SETTINGS non_replicated_deduplication_window = 100000;

CREATE TABLE IF NOT EXISTS tally.usage_site_1m AS tally.usage_site
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (site, ts, direction, ip_version, transport, service, peer_class)
TTL ts + INTERVAL 90 DAY
SETTINGS non_replicated_deduplication_window = 100000;

CREATE TABLE IF NOT EXISTS tally.usage_site_1h AS tally.usage_site
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (site, ts, direction, ip_version, transport, service, peer_class)
TTL ts + INTERVAL 730 DAY
SETTINGS non_replicated_deduplication_window = 100000;

CREATE MATERIALIZED VIEW IF NOT EXISTS tally.usage_site_mv TO tally.usage_site AS
SELECT ts, site, direction, ip_version, transport, service, peer_class,
       sum(bytes) AS bytes, sum(packets) AS packets, sum(flows) AS flows, uniqState(host) AS hosts
FROM tally.usage_contributions
GROUP BY ts, site, direction, ip_version, transport, service, peer_class;

CREATE MATERIALIZED VIEW IF NOT EXISTS tally.usage_site_1m_mv TO tally.usage_site_1m AS
SELECT minute AS ts, site, direction, ip_version, transport, service, peer_class,
       sum(bytes) AS bytes, sum(packets) AS packets, sum(flows) AS flows, uniqState(host) AS hosts
FROM (SELECT toStartOfMinute(ts) AS minute, * EXCEPT ts FROM tally.usage_contributions)
GROUP BY minute, site, direction, ip_version, transport, service, peer_class;

CREATE MATERIALIZED VIEW IF NOT EXISTS tally.usage_site_1h_mv TO tally.usage_site_1h AS
SELECT hour AS ts, site, direction, ip_version, transport, service, peer_class,
       sum(bytes) AS bytes, sum(packets) AS packets, sum(flows) AS flows, uniqState(host) AS hosts
FROM (SELECT toStartOfHour(ts) AS hour, * EXCEPT ts FROM tally.usage_contributions)
GROUP BY hour, site, direction, ip_version, transport, service, peer_class;
