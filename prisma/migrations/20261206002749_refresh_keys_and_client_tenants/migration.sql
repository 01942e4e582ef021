-- Issue 14 items 9 and 13. Each existing client is allowed exactly the tenants its live sessions
-- already carry, so an upgrade neither logs anyone out nor lets a client claim a tenant it never
-- used; any other tenant needs an admin (`gatehouse clients update ID --tenant acme`, or '*' for any). refresh_keys starts empty: the
-- token service seeds the first successor key on start (see keys/refresh-keys.ts).

-- CreateEnum
CREATE TYPE "refresh_key_status" AS ENUM ('active', 'previous');

-- AlterTable
ALTER TABLE "clients" ADD COLUMN     "allowed_subject_prefixes" TEXT[] DEFAULT ARRAY[]::TEXT[],
ADD COLUMN     "allowed_tenants" TEXT[] DEFAULT ARRAY[]::TEXT[];

UPDATE "clients" AS c SET "allowed_tenants" = t.tenants
FROM (
    SELECT "client_id", array_agg(DISTINCT "tenant" ORDER BY "tenant") AS tenants
    FROM "sessions"
    WHERE "tenant" IS NOT NULL AND "revoked_at" IS NULL AND "expires_at" > now()
    GROUP BY "client_id"
) AS t
WHERE t."client_id" = c."id";

-- AlterTable
ALTER TABLE "refresh_tokens" ADD COLUMN     "successor_kid" TEXT;

-- CreateTable
CREATE TABLE "refresh_keys" (
    "kid" TEXT NOT NULL,
    "purpose" TEXT NOT NULL,
    "status" "refresh_key_status" NOT NULL,
    "secret_enc" BYTEA NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "replaced_at" TIMESTAMPTZ(3),

    CONSTRAINT "refresh_keys_pkey" PRIMARY KEY ("kid")
);

-- CreateIndex
CREATE UNIQUE INDEX "refresh_keys_one_active" ON "refresh_keys"("purpose") WHERE (status = 'active');
