-- AlterTable
ALTER TABLE "clients" ADD COLUMN     "federated_issuer" TEXT,
ADD COLUMN     "federated_subject" TEXT,
ADD COLUMN     "jwks" TEXT,
ADD COLUMN     "jwks_uri" TEXT,
ALTER COLUMN "secret_hash" DROP NOT NULL;

-- CreateTable
CREATE TABLE "client_assertion_jtis" (
    "client_id" TEXT NOT NULL,
    "jti" TEXT NOT NULL,
    "expires_at" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "client_assertion_jtis_pkey" PRIMARY KEY ("client_id","jti")
);

-- CreateIndex
CREATE INDEX "client_assertion_jtis_expires_at_idx" ON "client_assertion_jtis"("expires_at");

-- CreateIndex
CREATE UNIQUE INDEX "clients_federated_issuer_federated_subject_key" ON "clients"("federated_issuer", "federated_subject");
