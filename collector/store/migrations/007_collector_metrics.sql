-- The collector's own counters, for the Collector and Oversight dashboards: Grafana reads only
-- ClickHouse, not /metrics. Every collector instance writes a snapshot every 10 s (counters as
-- the increase since its previous snapshot, gauges as they are) and, every minute, the status
-- of the ITSD register (collector/self-metrics.ts). Labels hold only values the collector
-- chooses: outcomes, reasons, statuses, route templates, the register's name. Never a host, an
-- agent, a person or anything from a request.

CREATE TABLE IF NOT EXISTS tally.collector_metrics
(
    ts DateTime('UTC') CODEC(DoubleDelta, ZSTD(1)),
    instance LowCardinality(String),
    metric LowCardinality(String),
    labels Map(LowCardinality(String), String),
    value Float64 CODEC(Gorilla, ZSTD(1))
)
ENGINE = MergeTree
PARTITION BY toYYYYMMDD(ts)
ORDER BY (metric, instance, ts)
TTL ts + INTERVAL 30 DAY;
