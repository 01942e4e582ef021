import type { Prisma, PrismaClient } from "../../gen/prisma/client.ts";
import { sqlScopeOf } from "../../shared/database/sql-scope.ts";
import { keyLock } from "../sql/signing-keys.ts";
import { prismaQuery } from "../store/prisma-sql.ts";

export type KeyTransaction = Prisma.TransactionClient;

/**
 * Runs `fn` in a transaction holding the signing-key advisory lock, so every key transition (first
 * start, admin calls, scheduled rotation on any replica, rewrap) sees the state the previous one
 * left: two replicas rotating at once produce one new key. The lock is per schema, so deployments
 * (and test files) sharing a Postgres database do not wait on each other.
 */
export function withKeyLock<T>(prisma: PrismaClient, fn: (tx: KeyTransaction) => Promise<T>): Promise<T> {
  const scope = sqlScopeOf(prisma);
  return prisma.$transaction(
    async (tx) => {
      await prismaQuery(tx, scope, keyLock);
      return fn(tx);
    },
    // Key generation (RSA 3072 takes a second or two) may happen under the lock.
    { maxWait: 10_000, timeout: 60_000 },
  );
}
