-- Role administration under separation of duties (collector/auth/administration.ts; docs/privacy.md
-- "Roles and who grants them").
--
-- A user belongs to one side: ITSD (its admins create it, the ITSD register records it) or OIOS
-- (its chiefs create it, the OIOS register records it; ITSD never sees it). A provisional user's
-- token passed through someone else's hands (the founder's one extra administrator, OIOS's
-- bootstrap chief): it does nothing until its holder replaces it.
ALTER TABLE tally.users ADD COLUMN IF NOT EXISTS side LowCardinality(String) DEFAULT 'itsd';

ALTER TABLE tally.users ADD COLUMN IF NOT EXISTS provisional UInt8 DEFAULT 0;

-- Proposals of a user with roles, or of roles for a user: one administrator proposes, another of
-- the same side confirms (or either rejects). state: proposed, confirmed, rejected.
CREATE TABLE IF NOT EXISTS tally.role_proposals
(
    proposal_id String,
    side LowCardinality(String),
    user_id String,
    roles Array(LowCardinality(String)),
    new_user UInt8,
    proposed_by String,
    proposed_at DateTime64(3, 'UTC'),
    state LowCardinality(String),
    decided_by String,
    decided_at Nullable(DateTime64(3, 'UTC')),
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY proposal_id;
