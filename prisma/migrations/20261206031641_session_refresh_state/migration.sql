-- Refresh-token state on the session row (v2 tokens carry session id + generation + MAC): a rotation
-- updates these unindexed columns in place instead of adding a refresh_tokens row. refresh_tokens
-- stays for tokens minted before this migration; generation 0 marks a session still on them.
-- AlterTable
ALTER TABLE "sessions" ADD COLUMN     "refresh_generation" INTEGER NOT NULL DEFAULT 0,
ADD COLUMN     "refresh_hash" BYTEA,
ADD COLUMN     "refresh_mac_kid" TEXT,
ADD COLUMN     "refresh_previous_hash" BYTEA,
ADD COLUMN     "refresh_rotated_at" TIMESTAMPTZ(3),
ADD COLUMN     "refresh_successor_kid" TEXT;
