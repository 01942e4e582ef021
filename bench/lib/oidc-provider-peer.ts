/**
 * The peer for Refresh: panva's oidc-provider (certified OpenID provider) answering
 * `POST /token grant_type=refresh_token`, configured as close to Gatehouse's Refresh as it allows:
 *
 * - one confidential client (`client_secret_basic`) with the `refresh_token` grant;
 *   `rotateRefreshToken: true`, so every refresh consumes the presented token and saves a successor
 *   (oidc-provider's default rotates only public clients or tokens past 70 % of their life);
 * - access tokens as RFC 9068 JWTs signed with Ed25519 (`resourceIndicators` with one resource
 *   server, `accessTokenFormat: "jwt"`, `EdDSA`), not stored, like ours; no ID token (no `openid`
 *   scope), no DPoP, no mTLS;
 * - storage: Postgres through {@link createPgAdapter} (one table per model, one statement per adapter
 *   call, pool as large as Gatehouse's), or oidc-provider's default in-process memory adapter when
 *   asked (labelled as such: nothing is persisted, so it is not comparable);
 * - sessions are bootstrapped without a browser: the server process creates a `Grant` and a
 *   `RefreshToken` per chain through oidc-provider's own models, then a driver process refreshes
 *   each chain sequentially (each successor is the next call's token), like our Refresh bench.
 *
 * Server and driver are separate processes (as `gatehouse serve` and its gRPC drivers are); this
 * file is both, chosen by `--role`.
 */
import { type ChildProcess, fork } from "node:child_process";
import { generateKeyPairSync, randomBytes, randomUUID } from "node:crypto";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { percentile } from "./bench-results.ts";
import { imageAllocator } from "./image-allocator.ts";
import { createPgAdapter } from "./oidc-pg-adapter.ts";

const here = fileURLToPath(import.meta.url);
const CLIENT_ID = "bench";
const RESOURCE = "urn:gatehouse:orders";
const SCOPE = "orders:read";

export type PeerStorage = "postgres" | "memory";

interface ServerTask {
  storage: PeerStorage;
  databaseUrl: string;
  schema: string;
  poolSize: number;
  chains: number;
  secret: string;
}
interface DriverTask {
  port: number;
  secret: string;
  tokens: string[];
  durationMs: number;
}
interface DriverResult {
  calls: number;
  errors: Record<string, number>;
  latenciesMs: number[];
}

export interface PeerResult {
  perSecond: number;
  p50: number;
  p99: number;
  calls: number;
  errors: Record<string, number>;
}

export const OIDC_PROVIDER_CONFIG =
  "oidc-provider 9 in its own process; one confidential client (client_secret_basic) with the refresh_token grant, " +
  "rotateRefreshToken: true; JWT access tokens (RFC 9068, EdDSA, resource indicator, not stored); no ID token; " +
  "storage: Postgres adapter on pg (one table per model in a bench-only schema, one statement per adapter call, " +
  "same pool size as Gatehouse), schema dropped afterwards; sessions = Grant + RefreshToken created through its models; " +
  "one HTTP/1.1 keep-alive driver process, each slot refreshing its own chain sequentially";

// ---------------------------------------------------------------- server process
async function runServer(task: ServerTask): Promise<void> {
  const { default: Provider } = await import("oidc-provider");
  const pgAdapter =
    task.storage === "postgres"
      ? await createPgAdapter(task.databaseUrl, task.schema, task.poolSize)
      : undefined;
  const { privateKey } = generateKeyPairSync("ed25519");
  const jwk = { ...privateKey.export({ format: "jwk" }), kid: "bench-ed25519", alg: "EdDSA", use: "sig" };
  const provider = new Provider("http://127.0.0.1", {
    ...(pgAdapter ? { adapter: pgAdapter.Adapter } : {}),
    clients: [
      {
        client_id: CLIENT_ID,
        client_secret: task.secret,
        grant_types: ["authorization_code", "refresh_token"],
        redirect_uris: ["https://client.bench/cb"],
        token_endpoint_auth_method: "client_secret_basic",
        // Only an Ed25519 key is configured (as Gatehouse signs with by default).
        id_token_signed_response_alg: "EdDSA",
      },
    ],
    jwks: { keys: [jwk] },
    cookies: { keys: [randomBytes(16).toString("hex")] },
    rotateRefreshToken: true,
    ttl: { AccessToken: 600, RefreshToken: 14 * 86_400, Grant: 14 * 86_400 },
    features: {
      devInteractions: { enabled: false },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => RESOURCE,
        useGrantedResource: () => true,
        getResourceServerInfo: () => ({
          scope: SCOPE,
          audience: RESOURCE,
          accessTokenTTL: 600,
          accessTokenFormat: "jwt",
          jwt: { sign: { alg: "EdDSA" } },
        }),
      },
    },
    findAccount: (_ctx: unknown, sub: string) => ({ accountId: sub, claims: () => ({ sub }) }),
  });
  provider.on("server_error", (_ctx: unknown, err: Error) => console.error(`oidc-provider: ${err.message}`));

  const client = await provider.Client.find(CLIENT_ID);
  const tokens: string[] = [];
  for (let i = 0; i < task.chains; i++) {
    const accountId = `bench-${randomUUID()}`;
    const grant = new provider.Grant({ accountId, clientId: CLIENT_ID });
    grant.addResourceScope(RESOURCE, SCOPE);
    const grantId = await grant.save();
    const rt = new provider.RefreshToken({
      accountId,
      client,
      grantId,
      gty: "authorization_code",
      scope: SCOPE,
      resource: RESOURCE,
      expiresWithSession: false,
      iiat: Math.floor(Date.now() / 1000),
    });
    tokens.push(await rt.save());
  }
  const server = http.createServer(provider.callback());
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  process.send!({ port: (server.address() as AddressInfo).port, tokens });
  process.once("message", async () => {
    server.close();
    await pgAdapter?.close();
    process.exit(0);
  });
}

// ---------------------------------------------------------------- driver process
async function runDriver(task: DriverTask): Promise<DriverResult> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: task.tokens.length });
  const authorization = `Basic ${Buffer.from(`${CLIENT_ID}:${task.secret}`).toString("base64")}`;
  const refresh = (token: string) =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      const body = `grant_type=refresh_token&refresh_token=${encodeURIComponent(token)}`;
      const req = http.request(
        {
          host: "127.0.0.1",
          port: task.port,
          path: "/token",
          method: "POST",
          agent,
          headers: {
            authorization,
            "content-type": "application/x-www-form-urlencoded",
            "content-length": Buffer.byteLength(body),
          },
        },
        (res) => {
          let text = "";
          res.setEncoding("utf8");
          res.on("data", (d: string) => {
            text += d;
          });
          res.on("end", () => resolve({ status: res.statusCode ?? 0, body: text }));
        },
      );
      req.on("error", reject);
      req.end(body);
    });
  const latencies: number[] = [];
  const errors: Record<string, number> = {};
  let calls = 0;
  const end = performance.now() + task.durationMs;
  await Promise.all(
    task.tokens.map(async (first) => {
      let token: string | undefined = first;
      while (token !== undefined && performance.now() < end) {
        const t0 = performance.now();
        try {
          const res = await refresh(token);
          const json = JSON.parse(res.body) as {
            refresh_token?: string;
            access_token?: string;
            error?: string;
          };
          if (res.status !== 200 || !json.refresh_token || !json.access_token) {
            // A chain that failed cannot go on: its token was consumed or is unknown.
            errors[json.error ?? String(res.status)] = (errors[json.error ?? String(res.status)] ?? 0) + 1;
            token = undefined;
            continue;
          }
          token = json.refresh_token;
          calls++;
          latencies.push(performance.now() - t0);
        } catch (err) {
          errors[(err as Error).message] = (errors[(err as Error).message] ?? 0) + 1;
          token = undefined;
        }
      }
    }),
  );
  agent.destroy();
  return { calls, errors, latenciesMs: latencies };
}

const role =
  process.argv.indexOf("--role") === -1 ? undefined : process.argv[process.argv.indexOf("--role") + 1];
if (role === "oidc-server") {
  process.once("message", (task: ServerTask) => {
    runServer(task).catch((err) => {
      console.error(err);
      process.exit(1);
    });
  });
} else if (role === "oidc-driver") {
  process.once("message", async (task: DriverTask) => {
    const result = await runDriver(task);
    process.send!(result, () => process.exit(0));
  });
}

// ---------------------------------------------------------------- coordinator
function child(roleName: string): ChildProcess {
  // BENCH_SERVER_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" profiles the server, as in token-service.ts.
  const server = roleName === "oidc-server";
  const extra = server ? (process.env.BENCH_SERVER_NODE_ARGS?.split(" ").filter(Boolean) ?? []) : [];
  // The peer's server runs on the allocator ours runs on (the image's jemalloc), so the ratio
  // compares the two services, not two allocators.
  const env = server ? { ...process.env, ...imageAllocator().env } : process.env;
  return fork(here, ["--role", roleName], { execArgv: ["--import", "tsx", ...extra], stdio: "inherit", env });
}

function answer<T>(c: ChildProcess, what: string): Promise<T> {
  return new Promise((resolve, reject) => {
    c.once("message", (m) => resolve(m as T));
    c.once("exit", (code) => reject(new Error(`${what} exited (${code}) before answering`)));
  });
}

/**
 * Refresh grants per second of oidc-provider at `concurrency` sequential chains for `durationMs`,
 * after a one-second warm-up on the same chains.
 */
export async function measureOidcProviderRefresh(options: {
  databaseUrl: string;
  concurrency: number;
  durationMs: number;
  storage: PeerStorage;
}): Promise<PeerResult> {
  const schema = `bench_oidc_${randomBytes(4).toString("hex")}`;
  const secret = randomBytes(24).toString("base64url");
  const server = child("oidc-server");
  try {
    const ready = answer<{ port: number; tokens: string[] }>(server, "oidc-provider server");
    server.send({
      storage: options.storage,
      databaseUrl: options.databaseUrl,
      schema,
      poolSize: Math.min(options.concurrency, 32),
      // One set of chains warms up, the other is measured from untouched tokens.
      chains: 2 * options.concurrency,
      secret,
    } satisfies ServerTask);
    const { port, tokens } = await ready;
    const drive = async (chains: string[], durationMs: number) => {
      const driver = child("oidc-driver");
      const done = answer<DriverResult>(driver, "oidc-provider driver");
      driver.send({ port, secret, tokens: chains, durationMs } satisfies DriverTask);
      return done;
    };
    await drive(tokens.slice(0, options.concurrency), 1000);
    const r = await drive(tokens.slice(options.concurrency), options.durationMs);
    const sorted = r.latenciesMs.sort((a, b) => a - b);
    return {
      perSecond: r.calls / (options.durationMs / 1000),
      p50: percentile(sorted, 50),
      p99: percentile(sorted, 99),
      calls: r.calls,
      errors: r.errors,
    };
  } finally {
    if (server.connected) server.send("stop");
    await new Promise((r) => {
      server.once("exit", r);
      setTimeout(() => {
        server.kill("SIGKILL");
        r(undefined);
      }, 3000).unref();
    });
    if (options.storage === "postgres") {
      const c = new pg.Client({ connectionString: options.databaseUrl });
      await c.connect();
      await c.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await c.end();
    }
  }
}
