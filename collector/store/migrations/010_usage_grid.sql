-- Tier A on one fixed grid (collector/store/usage.ts, docs/privacy.md "Site usage and k").
--
-- The cell is (site, minute, direction, ip_version, transport, service, peer_class). A host counts
-- toward a cell's k only with real traffic there (packets > 0 and bytes > 0), and its identity is
-- an HMAC of its agent id under the collector's key (usage-host.key), never a name. Cells are
-- kept raw in usage_cells for a few hours only: a periodic release reads each closed minute once,
-- writes the cells of at least k hosts and one folded 'other' cell per site (the rest, written
-- only when it reaches k hosts itself) to usage_released, and records the minute in
-- usage_release_marks. The hourly table is summed from released minutes only, so every number
-- a reader can get at any resolution is a sum of released cells, and nothing is ever released
-- twice or changed once released.
--
-- The tables of migration 003 summed every contribution, suppressed ones included, with the host
-- names' uniq states (a reader could test whether a known host was in a bucket): they stop being
-- fed and are dropped, SYNC so their files go at once. The site usage they held is lost with
-- them on an upgrade.

DROP VIEW IF EXISTS tally.usage_site_mv;

DROP VIEW IF EXISTS tally.usage_site_1m_mv;

DROP VIEW IF EXISTS tally.usage_site_1h_mv;

DROP TABLE IF EXISTS tally.usage_site SYNC;

DROP TABLE IF EXISTS tally.usage_site_1m SYNC;

DROP TABLE IF EXISTS tally.usage_site_1h SYNC;

-- Raw minute cells, suppressed ones included, until their minute is released. Hourly partitions
-- dropped whole three hours on: what the release has not read by then is lost, not kept.
CREATE TABLE IF NOT EXISTS tally.usage_cells
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
PARTITION BY toStartOfHour(ts)
ORDER BY (site, ts, direction, ip_version, transport, service, peer_class)
TTL ts + INTERVAL 3 HOUR
SETTINGS non_replicated_deduplication_window = 100000, ttl_only_drop_parts = 1, merge_with_ttl_timeout = 600;

-- `host` of usage_contributions holds the keyed host id, not a name (collector/store/usage-host-key.ts).
CREATE MATERIALIZED VIEW IF NOT EXISTS tally.usage_cells_mv TO tally.usage_cells AS
SELECT minute AS ts, site, direction, ip_version, transport, service, peer_class,
       sum(bytes) AS bytes, sum(packets) AS packets, sum(flows) AS flows,
       uniqStateIf(host, real_traffic) AS hosts
FROM
(
    SELECT toStartOfMinute(ts) AS minute, packets > 0 AND bytes > 0 AS real_traffic, * EXCEPT ts
    FROM tally.usage_contributions
)
GROUP BY minute, site, direction, ip_version, transport, service, peer_class;

-- Released minute cells: folded = 1 is a site's 'other' cell of that minute. min_cell_hosts is
-- the cell's host count (the smallest over the merged cells on the hourly table), so raising k
-- hides at once what was released under a smaller k.
CREATE TABLE IF NOT EXISTS tally.usage_released
(
    ts DateTime('UTC') CODEC(DoubleDelta, ZSTD(1)),
    site LowCardinality(String),
    folded UInt8,
    direction LowCardinality(String),
    ip_version UInt8,
    transport LowCardinality(String),
    service LowCardinality(String),
    peer_class LowCardinality(String),
    bytes SimpleAggregateFunction(sum, UInt64),
    packets SimpleAggregateFunction(sum, UInt64),
    flows SimpleAggregateFunction(sum, UInt64),
    min_cell_hosts SimpleAggregateFunction(min, UInt64),
    hosts AggregateFunction(uniq, String)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (site, ts, folded, direction, ip_version, transport, service, peer_class)
TTL ts + INTERVAL 90 DAY
SETTINGS non_replicated_deduplication_window = 100000;

CREATE TABLE IF NOT EXISTS tally.usage_released_1h AS tally.usage_released
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (site, ts, folded, direction, ip_version, transport, service, peer_class)
TTL ts + INTERVAL 730 DAY
SETTINGS non_replicated_deduplication_window = 100000;

CREATE MATERIALIZED VIEW IF NOT EXISTS tally.usage_released_1h_mv TO tally.usage_released_1h AS
SELECT hour AS ts, site, folded, direction, ip_version, transport, service, peer_class,
       sum(bytes) AS bytes, sum(packets) AS packets, sum(flows) AS flows,
       min(min_cell_hosts) AS min_cell_hosts, uniqMergeState(hosts) AS hosts
FROM (SELECT toStartOfHour(ts) AS hour, * EXCEPT ts FROM tally.usage_released)
GROUP BY hour, site, folded, direction, ip_version, transport, service, peer_class;

-- One row per released minute (every site at once) and the k it was released with.
CREATE TABLE IF NOT EXISTS tally.usage_release_marks
(
    minute DateTime('UTC'),
    k UInt32,
    released_at DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree
ORDER BY minute
TTL minute + INTERVAL 730 DAY
SETTINGS non_replicated_deduplication_window = 100000;
