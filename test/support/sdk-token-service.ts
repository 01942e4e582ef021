import { randomBytes } from "node:crypto";
import { loadSettings } from "../../services/shared/settings/index.ts";
import { type RunningTokenService, startTokenService } from "../../services/token/token-service.ts";
import { tokenServiceSettings } from "../../services/token/token-service-settings.ts";
import type { TestDatabase } from "./database.ts";
import { freePort } from "./ports.ts";
import { ISSUER, silentLogger } from "./sidecar-fixtures.ts";
import { createTestClient } from "./token-fixtures.ts";

/**
 * A real token service for the SDK's tests, on fixed ports so that it can be stopped and started
 * again where its callers expect it (the client's retry tests). Its issuing client is `web` unless named.
 *
 * ```ts
 * const ts = await startSdkTokenService(tdb, { redisUrl, stream });
 * const client = createTokenClient({ baseUrl: ts.grpcUrl, credentials: ts.web });
 * expect(await ts.rpcCount("Refresh")).toBe(1);
 * ```
 */
export interface SdkTokenService {
  readonly service: RunningTokenService;
  /** `http://127.0.0.1:<grpc port>`: the client's baseUrl for `protocol: "grpc"`. */
  readonly grpcUrl: string;
  /** `http://127.0.0.1:<http port>`: Connect, OAuth and `/.well-known/jwks.json`. */
  readonly httpUrl: string;
  readonly jwksUrl: string;
  /** The issuing client's credentials, in the SDK client's shape. */
  readonly web: { clientId: string; clientSecret: string };
  /** Calls of `method` the service has finished (any protocol, any outcome), from its RPC metrics. */
  rpcCount(method: string): Promise<number>;
  stop(): Promise<void>;
  /** Starts it again on the same ports (after `stop`); `rpcCount` starts from 0 again. */
  start(): Promise<void>;
}

export interface SdkTokenServiceOptions {
  redisUrl?: string;
  stream?: string;
  /** Don't start it yet: its ports are reserved, `start()` starts it. */
  deferred?: boolean;
  /** The issuing client's id (one per service on a shared database). Default `web`. */
  clientId?: string;
}

export async function startSdkTokenService(
  tdb: TestDatabase,
  options: SdkTokenServiceOptions = {},
): Promise<SdkTokenService> {
  const clientId = options.clientId ?? "web";
  const web = await createTestClient(tdb.db.prisma, {
    id: clientId,
    roles: ["issuer"],
    allowedAudiences: ["orders", "billing"],
    allowedScopes: ["orders:read", "orders:write", "billing:read"],
  });
  const grpcPort = await freePort();
  const httpPort = await freePort();
  const env: Record<string, string> = {
    DATABASE_URL: tdb.url,
    GATEHOUSE_ISSUER: ISSUER,
    GATEHOUSE_MASTER_KEY: masterKeyOf(tdb),
    GATEHOUSE_LISTEN: `127.0.0.1:${grpcPort}`,
    GATEHOUSE_HTTP_LISTEN: `127.0.0.1:${httpPort}`,
    GATEHOUSE_ADMIN_LISTEN: "127.0.0.1:0",
    GATEHOUSE_KEY_ROTATION: "off",
    GATEHOUSE_SHUTDOWN_GRACE: "1s",
  };
  if (options.redisUrl === undefined) env.GATEHOUSE_REVOCATION = "none";
  else env.REDIS_URL = options.redisUrl;
  if (options.stream !== undefined) env.GATEHOUSE_REVOCATION_STREAM = options.stream;
  const settings = loadSettings(tokenServiceSettings, { env });
  let running: RunningTokenService | undefined;
  const start = async () => {
    running ??= await startTokenService({
      settings,
      database: { kind: "postgres", url: tdb.url },
      logger: silentLogger(),
    });
  };
  if (!options.deferred) await start();
  const httpUrl = `http://127.0.0.1:${httpPort}`;
  return {
    get service() {
      if (running === undefined) throw new Error("token service is not running");
      return running;
    },
    grpcUrl: `http://127.0.0.1:${grpcPort}`,
    httpUrl,
    jwksUrl: `${httpUrl}/.well-known/jwks.json`,
    web: { clientId, clientSecret: web.secret },
    async rpcCount(method) {
      if (running === undefined) return 0;
      const metric = await running.metrics.getSingleMetric("gatehouse_rpc_duration_seconds")?.get();
      let count = 0;
      for (const v of metric?.values ?? []) {
        if (
          (v as { metricName?: string }).metricName === "gatehouse_rpc_duration_seconds_count" &&
          v.labels.method === method
        ) {
          count += v.value;
        }
      }
      return count;
    },
    async stop() {
      const r = running;
      running = undefined;
      await r?.shutdown();
    },
    start,
  };
}

/** Services on one database share its signing keys, so they need the master key that encrypted them. */
const masterKeys = new WeakMap<TestDatabase, string>();
function masterKeyOf(tdb: TestDatabase): string {
  let key = masterKeys.get(tdb);
  if (key === undefined) {
    key = randomBytes(32).toString("base64");
    masterKeys.set(tdb, key);
  }
  return key;
}
