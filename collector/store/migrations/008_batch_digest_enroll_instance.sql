-- What makes a resent batch and a replayed enrollment recognisable.
--
-- ingest_batches.digest: the SHA-256 of the batch's content without its seq. A batch arriving
-- with a stored (agent_id, seq) and the same digest is a duplicate; another digest means the
-- agent's numbering went backwards, and the batch is refused so that the agent renumbers it.
-- Rows stored before this migration have '' and are taken as duplicates, as they were.
--
-- enroll_token_uses.instance_sha256: the SHA-256 of the instance secret the agent sent with the
-- token, so the same agent asking again with the same token gets its enrollment back.

ALTER TABLE tally.ingest_batches ADD COLUMN IF NOT EXISTS digest String DEFAULT '';

ALTER TABLE tally.enroll_token_uses ADD COLUMN IF NOT EXISTS instance_sha256 String DEFAULT '';
