import { randomBytes } from "node:crypto";
import { createLogger } from "../../services/shared/logging/index.ts";
import { type RunningTokenService, startTokenService } from "../../services/token/token-service.ts";
import type { TestDatabase } from "./database.ts";
import { createTestClient } from "./token-fixtures.ts";
import { testServiceSettings } from "./token-service-settings.ts";

export interface TokenReplicas {
  a: RunningTokenService;
  b: RunningTokenService;
  /** Each client made up front, by id. */
  creds: Record<string, { id: string; secret: string }>;
}

/**
 * Two token-service replicas in this process on one database (one master key, a credential cache
 * long enough that only the client-change watch can make them see a change), with `clients` made first.
 */
export async function startTokenReplicas(
  tdb: TestDatabase,
  clients: readonly (readonly [id: string, roles: readonly string[]])[],
): Promise<TokenReplicas> {
  const creds: Record<string, { id: string; secret: string }> = {};
  for (const [id, roles] of clients) {
    creds[id] = { id, secret: (await createTestClient(tdb.db.prisma, { id, roles: [...roles] })).secret };
  }
  const masterKey = randomBytes(32);
  const start = () =>
    startTokenService({
      settings: testServiceSettings({ masterKey, credentialCacheTtl: 60_000 }),
      database: { kind: "postgres", url: tdb.url },
      logger: createLogger({ level: "silent", component: "token", pretty: false }),
    });
  return { a: await start(), b: await start(), creds };
}
