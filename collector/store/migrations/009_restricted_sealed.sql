-- Tier I records encrypted at rest (collector/restricted/sealed.ts). Flows, DNS names and visited
-- sites are stored sealed with their case's key (AES-256-GCM, the key mechanism of the packet
-- segments and export bundles, tally.case_keys), one nonce per row; the authenticated data binds
-- each row to its case, category, grant, agent, time and row key, so a row moved to another case
-- or another time no longer opens. In clear only what is not tier I and what the drill-down
-- selects on: case, grant, agent, times. Everything else (addresses, ports, protocol, counts,
-- names, the community id) is in `ciphertext`, padded to a multiple of 128 bytes so its length
-- does not tell a name's length.
--
-- flow_key: HMAC-SHA256 under the case key of the flow's community id, so a flow the agent
-- resends with newer counts replaces itself (ReplacingMergeTree on `end`) without its 5-tuple's
-- digest being testable by anyone without the key. row_id (dns, web): seq:index in the batch.
--
-- The tables of the same names that held these records in clear (migration 006) are dropped and
-- made again, SYNC so that their files go at once rather than after the engine's delay: no
-- plaintext tier I stays behind an upgrade. Records of cases active at the upgrade are lost with
-- them (docs/privacy.md, "Tier I at rest"). Packet segments and export bundles were sealed
-- already and are kept.

DROP TABLE IF EXISTS tally_restricted.flows SYNC;

CREATE TABLE IF NOT EXISTS tally_restricted.flows
(
    case_id String,
    grant_id String,
    agent_id LowCardinality(String),
    received_at DateTime64(3, 'UTC'),
    start DateTime64(3, 'UTC'),
    `end` DateTime64(3, 'UTC'),
    flow_key String,
    key_version UInt64,
    nonce String,
    ciphertext String,
    tag String
)
ENGINE = ReplacingMergeTree(`end`)
PARTITION BY case_id
ORDER BY (case_id, start, flow_key, agent_id)
SETTINGS non_replicated_deduplication_window = 100000, old_parts_lifetime = 60;

DROP TABLE IF EXISTS tally_restricted.dns SYNC;

CREATE TABLE IF NOT EXISTS tally_restricted.dns
(
    case_id String,
    grant_id String,
    agent_id LowCardinality(String),
    received_at DateTime64(3, 'UTC'),
    ts DateTime64(3, 'UTC'),
    row_id String,
    key_version UInt64,
    nonce String,
    ciphertext String,
    tag String
)
ENGINE = MergeTree
PARTITION BY case_id
ORDER BY (case_id, ts, agent_id, row_id)
SETTINGS non_replicated_deduplication_window = 100000, old_parts_lifetime = 60;

DROP TABLE IF EXISTS tally_restricted.web SYNC;

CREATE TABLE IF NOT EXISTS tally_restricted.web
(
    case_id String,
    grant_id String,
    agent_id LowCardinality(String),
    received_at DateTime64(3, 'UTC'),
    ts DateTime64(3, 'UTC'),
    row_id String,
    key_version UInt64,
    nonce String,
    ciphertext String,
    tag String
)
ENGINE = MergeTree
PARTITION BY case_id
ORDER BY (case_id, ts, agent_id, row_id)
SETTINGS non_replicated_deduplication_window = 100000, old_parts_lifetime = 60;
