import { randomBytes } from "node:crypto";
import type { PrismaClient } from "../../services/gen/prisma/client.ts";
import { createLogger } from "../../services/shared/logging/index.ts";
import type { ClientRecord } from "../../services/token/clients/client-record.ts";
import { generateClientSecret, hashClientSecret } from "../../services/token/clients/client-secret.ts";
import type { FlowDeps } from "../../services/token/flows/flow-deps.ts";
import { createKeyRing } from "../../services/token/keys/key-ring.ts";
import { createMacKeys, createSuccessorKeys } from "../../services/token/keys/refresh-keys.ts";
import type { SqlExecutor } from "../../services/token/store/sql-executor.ts";
import { createSqlTokenStore } from "../../services/token/store/sql-token-store.ts";

/**
 * A settable clock for the flows. The default start is fixed and in the past, so anything that
 * reads the real time instead of the injected clock fails every run, not only after a date.
 */
export function testClock(start = Date.parse("2026-01-05T12:00:00Z")) {
  let t = start;
  return {
    now: () => t,
    advance(ms: number) {
      t += ms;
    },
    set(ms: number) {
      t = ms;
    },
  };
}

export interface ClientSpec extends Partial<Omit<ClientRecord, "secretHash">> {
  id: string;
}

/** Inserts a client row and returns it with its plaintext secret (cheap scrypt parameters for speed). */
export async function createTestClient(
  prisma: PrismaClient,
  spec: ClientSpec,
): Promise<{ client: ClientRecord; secret: string }> {
  const secret = generateClientSecret();
  const row = await prisma.client.create({
    data: {
      id: spec.id,
      name: spec.name ?? spec.id,
      secretHash: await hashClientSecret(secret, { N: 1024, r: 8, p: 1 }),
      roles: spec.roles ?? ["issuer"],
      allowedAudiences: spec.allowedAudiences ?? ["orders", "billing"],
      allowedScopes: spec.allowedScopes ?? ["orders:read", "orders:write", "billing:read"],
      allowedClaims: spec.allowedClaims ?? ["plan"],
      allowedTenants: spec.allowedTenants ?? ["*"],
      allowedSubjectPrefixes: spec.allowedSubjectPrefixes ?? [],
      accessTokenTtlSeconds: spec.accessTokenTtlSeconds ?? 600,
      refreshIdleTtlSeconds: spec.refreshIdleTtlSeconds ?? 14 * 86400,
      refreshAbsoluteTtlSeconds: spec.refreshAbsoluteTtlSeconds ?? 90 * 86400,
      refreshGraceSeconds: spec.refreshGraceSeconds ?? 10,
      disabledAt: spec.disabledAt ?? null,
    },
  });
  return { client: row as ClientRecord, secret };
}

/** FlowDeps on a real database with a started key ring; `published` records what flows asked to publish. */
export async function flowDeps(
  prisma: PrismaClient,
  executor: SqlExecutor,
  now: () => number,
): Promise<FlowDeps & { prisma: PrismaClient; published: string[][]; stop(): void }> {
  const log = createLogger({ level: "silent", component: "test", pretty: false });
  const masterKey = randomBytes(32);
  const keys = createKeyRing({ prisma, masterKey, log, pollMs: 60_000 });
  await keys.start();
  const successorKeys = createSuccessorKeys({ prisma, masterKey, log, pollMs: 60_000 });
  await successorKeys.start();
  const macKeys = createMacKeys({ prisma, masterKey, log, pollMs: 60_000 });
  await macKeys.start();
  const published: string[][] = [];
  return {
    prisma,
    store: createSqlTokenStore(executor),
    keys,
    issuer: "https://auth.test",
    successorKeys,
    macKeys,
    maxAccessTokenTtlSeconds: 3600,
    now,
    async publish(ids) {
      published.push([...ids]);
      return false;
    },
    log,
    published,
    stop: () => {
      keys.stop();
      successorKeys.stop();
      macKeys.stop();
    },
  };
}
