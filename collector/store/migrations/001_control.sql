-- Control data: enrolled agents, enrollment tokens, users. Small tables, rewritten rarely; a
-- change is a new row with a higher `version`, read with FINAL.

CREATE TABLE IF NOT EXISTS tally.agents
(
    agent_id String,
    site LowCardinality(String),
    host String,
    credential_sha256 String,
    enroll_token_id String,
    enrolled_at DateTime64(3, 'UTC'),
    revoked_at Nullable(DateTime64(3, 'UTC')),
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY agent_id;

CREATE TABLE IF NOT EXISTS tally.enroll_tokens
(
    token_id String,
    site LowCardinality(String),
    secret_sha256 String,
    created_by String,
    created_at DateTime64(3, 'UTC'),
    expires_at DateTime64(3, 'UTC'),
    max_uses UInt32,
    revoked_at Nullable(DateTime64(3, 'UTC')),
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY token_id;

CREATE TABLE IF NOT EXISTS tally.enroll_token_uses
(
    token_id String,
    agent_id String,
    used_at DateTime64(3, 'UTC')
)
ENGINE = MergeTree
ORDER BY (token_id, used_at);

CREATE TABLE IF NOT EXISTS tally.users
(
    user_id String,
    name String,
    roles Array(LowCardinality(String)),
    token_sha256 String,
    created_by String,
    created_at DateTime64(3, 'UTC'),
    revoked_at Nullable(DateTime64(3, 'UTC')),
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY user_id;
