-- Issue 14 items 9 and 13. Existing clients get no allowed tenants: from now on they cannot set a
-- tenant (and sessions carrying one cannot refresh) until an admin lists the tenants they serve
-- (`gatehouse clients update ID --tenant acme`, or --tenant '*' for any). refresh_keys starts empty: the
-- token service seeds the first successor key on start (see keys/refresh-keys.ts).

-- CreateEnum
CREATE TYPE "refresh_key_status" AS ENUM ('active', 'previous');

-- AlterTable
ALTER TABLE "clients" ADD COLUMN     "allowed_subject_prefixes" TEXT[] DEFAULT ARRAY[]::TEXT[],
ADD COLUMN     "allowed_tenants" TEXT[] DEFAULT ARRAY[]::TEXT[];

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
