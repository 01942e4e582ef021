import type { Prisma, PrismaClient } from "../../gen/prisma/client.ts";

export type KeyTransaction = Prisma.TransactionClient;

/** First half of the advisory lock key: "ghk" in ASCII. The second half is the schema's hash. */
const KEY_LOCK_CLASS = 0x67686b;

/**
 * Runs `fn` in a transaction holding the signing-key advisory lock, so every key transition (first
 * start, admin calls, scheduled rotation on any replica, rewrap) sees the state the previous one
 * left: two replicas rotating at once produce one new key. The lock is per schema, so deployments
 * (and test files) sharing a Postgres database do not wait on each other.
 */
export function withKeyLock<T>(prisma: PrismaClient, fn: (tx: KeyTransaction) => Promise<T>): Promise<T> {
  return prisma.$transaction(
    async (tx) => {
      await tx.$executeRawUnsafe(
        `SELECT pg_advisory_xact_lock(${KEY_LOCK_CLASS}, hashtext(current_schema()))`,
      );
      return fn(tx);
    },
    // Key generation (RSA 3072 takes a second or two) may happen under the lock.
    { maxWait: 10_000, timeout: 60_000 },
  );
}
