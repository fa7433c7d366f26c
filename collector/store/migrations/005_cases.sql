-- Investigations (bulletin sections 8 and 9). A case is one document, rewritten on each step
-- with a higher version and read with FINAL; the register holds the history.

CREATE TABLE IF NOT EXISTS tally.cases
(
    case_id String,
    kind LowCardinality(String),
    state LowCardinality(String),
    doc String,
    updated_at DateTime64(3, 'UTC'),
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY case_id;

-- Grants issued to agents (capture) and to investigators (drill-down). Revoked by a new row.
CREATE TABLE IF NOT EXISTS tally.grants
(
    grant_id String,
    case_id String,
    audience LowCardinality(String),
    subject String,
    token String,
    window_start DateTime64(3, 'UTC'),
    window_end DateTime64(3, 'UTC'),
    issued_at DateTime64(3, 'UTC'),
    revoked_at Nullable(DateTime64(3, 'UTC')),
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY grant_id;

-- Notices to send (8.5a, 8.5f, 8.2), delivered by webhook or SMTP when configured.
CREATE TABLE IF NOT EXISTS tally.outbox
(
    message_id String,
    case_id String,
    channel LowCardinality(String),
    recipient String,
    subject String,
    body String,
    created_at DateTime64(3, 'UTC'),
    delivered_at Nullable(DateTime64(3, 'UTC')),
    attempts UInt32,
    last_error String,
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY message_id;

-- ITSD officers designated to assist OIOS (9.2e): one designee and two alternates per category.
CREATE TABLE IF NOT EXISTS tally.oios_designations
(
    category LowCardinality(String),
    user_id String,
    position LowCardinality(String),
    designated_by String,
    designated_at DateTime64(3, 'UTC'),
    revoked_at Nullable(DateTime64(3, 'UTC')),
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (category, user_id);
