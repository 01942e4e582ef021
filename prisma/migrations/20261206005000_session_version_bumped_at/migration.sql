-- When an access-only Revoke last bumped the session's version: a later bump is skipped (no outbox
-- event, no audit row) when no access token can have been minted at the current version since.
ALTER TABLE "sessions" ADD COLUMN "version_bumped_at" TIMESTAMPTZ(3);
