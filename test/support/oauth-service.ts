import { Writable } from "node:stream";
import { createLogger } from "../../services/shared/logging/index.ts";
import {
  type RunningTokenService,
  startTokenService,
  type TokenServiceSettings,
} from "../../services/token/token-service.ts";
import { type TestDatabase, useTestDatabase } from "./database.ts";
import { freePort } from "./ports.ts";
import { type ClientSpec, createTestClient, testClock } from "./token-fixtures.ts";
import { testServiceSettings } from "./token-service-settings.ts";

export interface OAuthTestService {
  tdb: TestDatabase;
  service: RunningTokenService;
  /** `http://127.0.0.1:<port>`: the issuer, so discovery finds the endpoints where they really are. */
  issuer: string;
  clock: ReturnType<typeof testClock>;
  creds: Record<string, { id: string; secret: string }>;
  /** Every log line the service wrote (level info and above). */
  logLines: string[];
  stop(): Promise<void>;
}

/**
 * A token service on the real Postgres whose issuer is its own HTTP address, with the given
 * clients, for tests that discover it the way an OAuth client library does.
 */
export async function startOAuthTestService(
  clients: readonly ClientSpec[],
  config: Partial<TokenServiceSettings> = {},
): Promise<OAuthTestService> {
  const tdb = await useTestDatabase();
  const creds: Record<string, { id: string; secret: string }> = {};
  for (const spec of clients) {
    creds[spec.id] = { id: spec.id, secret: (await createTestClient(tdb.db.prisma, spec)).secret };
  }
  const logLines: string[] = [];
  const destination = new Writable({
    write(chunk, _encoding, callback) {
      logLines.push(String(chunk));
      callback();
    },
  });
  const clock = testClock(Date.now());
  const port = await freePort();
  const issuer = `http://127.0.0.1:${port}`;
  const service = await startTokenService({
    settings: testServiceSettings({ ...config, issuer, httpListen: { host: "127.0.0.1", port } }),
    database: { kind: "postgres", url: tdb.url },
    logger: createLogger({ level: "info", component: "token", pretty: false, destination }),
    now: clock.now,
  });
  return {
    tdb,
    service,
    issuer,
    clock,
    creds,
    logLines,
    async stop() {
      await service.shutdown();
      await tdb.drop();
    },
  };
}
