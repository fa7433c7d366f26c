-- Tier I (per-person records: flows, DNS names, visited sites, packets): stored only under a grant, apart
-- from everything else, in `tally_restricted`. Every table is partitioned by case, so the purge
-- after delivery or at the end of a case (bulletin 8.5e) is one DROP PARTITION per table.
-- Each insert carries a deduplication token made of (agent_id, grant_id, seq, table), so a batch
-- retried after a crash is written once. Parts a drop or merge leaves behind are deleted from
-- disk after 60 s instead of the default 8 minutes (old_parts_lifetime).

CREATE DATABASE IF NOT EXISTS tally_restricted;

-- Flow records. The agent resends a running flow at every interval with its cumulative counts:
-- (community_id, start) names the flow on one agent, and the record with the latest `end` is
-- the one to keep (agent/subject/recorder.ts). `end` is the version, not the arrival time, so a
-- late retry of an older interval cannot overwrite newer counts. Read with FINAL.
CREATE TABLE IF NOT EXISTS tally_restricted.flows
(
    case_id String,
    grant_id String,
    agent_id LowCardinality(String),
    received_at DateTime64(3, 'UTC'),
    start DateTime64(3, 'UTC'),
    `end` DateTime64(3, 'UTC'),
    ip_version UInt8,
    protocol UInt8,
    src String,
    dst String,
    src_port UInt16,
    dst_port UInt16,
    bytes UInt64,
    packets UInt64,
    tcp_flags UInt8,
    community_id String
)
ENGINE = ReplacingMergeTree(`end`)
PARTITION BY case_id
ORDER BY (case_id, start, community_id, agent_id)
SETTINGS non_replicated_deduplication_window = 100000, old_parts_lifetime = 60;

CREATE TABLE IF NOT EXISTS tally_restricted.dns
(
    case_id String,
    grant_id String,
    agent_id LowCardinality(String),
    received_at DateTime64(3, 'UTC'),
    ts DateTime64(3, 'UTC'),
    client String,
    server String,
    query String,
    qtype LowCardinality(String),
    rcode LowCardinality(String)
)
ENGINE = MergeTree
PARTITION BY case_id
ORDER BY (case_id, ts)
SETTINGS non_replicated_deduplication_window = 100000, old_parts_lifetime = 60;

CREATE TABLE IF NOT EXISTS tally_restricted.web
(
    case_id String,
    grant_id String,
    agent_id LowCardinality(String),
    received_at DateTime64(3, 'UTC'),
    ts DateTime64(3, 'UTC'),
    client String,
    server String,
    server_port UInt16,
    kind LowCardinality(String),
    name String
)
ENGINE = MergeTree
PARTITION BY case_id
ORDER BY (case_id, ts)
SETTINGS non_replicated_deduplication_window = 100000, old_parts_lifetime = 60;

-- Packet captures: each segment (a classic pcap file) encrypted with its case's key
-- (AES-256-GCM, base64 fields); `key_version` names the key in tally.case_keys. A segment is
-- named by (grant_id, agent_id, segment_index), so a resent segment replaces itself.
CREATE TABLE IF NOT EXISTS tally_restricted.pcap_segments
(
    case_id String,
    grant_id String,
    agent_id LowCardinality(String),
    received_at DateTime64(3, 'UTC'),
    segment_index UInt32,
    first DateTime64(3, 'UTC'),
    last DateTime64(3, 'UTC'),
    packets UInt32,
    bytes UInt64,
    key_version UInt64,
    nonce String,
    ciphertext String CODEC(ZSTD(1)),
    tag String
)
ENGINE = ReplacingMergeTree(received_at)
PARTITION BY case_id
ORDER BY (case_id, first, agent_id, grant_id, segment_index)
SETTINGS non_replicated_deduplication_window = 100000, old_parts_lifetime = 60;

-- Export bundles (8.5c), one row per file, encrypted with the case key like the segments, kept
-- until the receiving official's receipt (or the end of the case) purges them.
CREATE TABLE IF NOT EXISTS tally_restricted.exports
(
    case_id String,
    export_id String,
    name String,
    created_at DateTime64(3, 'UTC'),
    created_by String,
    bytes UInt64,
    sha256 String,
    key_version UInt64,
    nonce String,
    ciphertext String CODEC(ZSTD(1)),
    tag String
)
ENGINE = MergeTree
PARTITION BY case_id
ORDER BY (case_id, export_id, name)
SETTINGS old_parts_lifetime = 60;

-- Per-case data keys, each encrypted with the master key in <data_dir>/case-master.key.
-- Destroying a case's keys (crypto-shredding) overwrites key_ciphertext by a mutation and sets
-- destroyed_at; the row stays as the record that the key existed and when it went.
-- Concurrent collectors may each create a key for a case: rows are per (case_id, version).
CREATE TABLE IF NOT EXISTS tally.case_keys
(
    case_id String,
    key_ciphertext String,
    created_at DateTime64(3, 'UTC'),
    destroyed_at Nullable(DateTime64(3, 'UTC')),
    version UInt64
)
ENGINE = MergeTree
ORDER BY (case_id, version)
SETTINGS old_parts_lifetime = 60;

-- Tier I batches received: no records, only who sent what when, to recognise a retry by
-- (agent_id, grant_id, seq), also after the case's records were purged.
CREATE TABLE IF NOT EXISTS tally.restricted_batches
(
    agent_id String,
    grant_id String,
    seq UInt64,
    case_id String,
    received_at DateTime64(3, 'UTC'),
    flows UInt32,
    dns UInt32,
    web UInt32,
    pcap UInt32
)
ENGINE = ReplacingMergeTree(received_at)
ORDER BY (agent_id, grant_id, seq)
SETTINGS non_replicated_deduplication_window = 100000;
