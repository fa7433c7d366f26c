-- Every register entry signed on its own (collector/register/register.ts; docs/privacy.md
-- "Register").
--
-- `signature` is the register key's Ed25519 signature (base64url) over the entry's canonical
-- bytes, its seq, prev_hash and hash included, written in the same insert as the entry. The hash
-- chain needs no key, so without it whoever holds the data directory could append entries in
-- anyone's name that the collector would take as its own. Entries stored before this migration
-- keep an empty signature: they are trusted only where a checkpoint signed with the register key
-- covers them.
ALTER TABLE tally.register_entries ADD COLUMN IF NOT EXISTS signature String DEFAULT '';

-- What a case's entries say is read on every tier I access (its state on record): one skip
-- index on case_id keeps that read to the granules that hold the case.
ALTER TABLE tally.register_entries ADD INDEX IF NOT EXISTS case_id_bloom case_id TYPE bloom_filter GRANULARITY 1;
