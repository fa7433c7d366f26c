-- The tamper-evident register (bulletin 8.5d; OIOS's own record, 9.2d): two separate chains,
-- `itsd` and `oios`, of canonical JSON entries (RFC 8785) linked by SHA-256, with signed
-- checkpoints over an RFC 6962 Merkle tree. See collector/register/register.ts.
--
-- `entry` is the record, byte for byte what was hashed plus its hash; the other columns are an
-- index over it and `tally register verify` checks they agree. Plain MergeTree with no
-- deduplication window: a second row with the same seq is kept, so a forged one is visible.

CREATE TABLE IF NOT EXISTS tally.register_entries
(
    register LowCardinality(String),
    seq UInt64,
    ts DateTime64(3, 'UTC'),
    kind LowCardinality(String),
    actor String,
    case_id String,
    entry String CODEC(ZSTD(3)),
    prev_hash String,
    hash String
)
ENGINE = MergeTree
ORDER BY (register, seq);

-- Signed tree heads. A countersignature adds a row with a higher version that carries every
-- countersignature so far; read with FINAL.
CREATE TABLE IF NOT EXISTS tally.register_checkpoints
(
    register LowCardinality(String),
    size UInt64,
    root String,
    ts DateTime64(3, 'UTC'),
    key_id String,
    signature String,
    countersignatures String,
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (register, size);
