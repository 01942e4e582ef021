import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { resolve } from "node:path";
import { createInterface } from "node:readline";
import { afterAll, beforeAll, expect, it } from "vitest";
import { type TestDatabase, useTestDatabase } from "../support/database.ts";
import { type TestRedis, useTestRedis } from "../support/redis.ts";
import { type SdkTokenService, startSdkTokenService } from "../support/sdk-token-service.ts";
import { ISSUER } from "../support/sidecar-fixtures.ts";
import { grpcTokenClient } from "../support/token-clients.ts";

/**
 * examples/sdk-service as its own process, against a real token service and Redis: it signs a user
 * in with gatehouse/client, calls its own API (guarded by gatehouse/express) with the session's
 * access token, and refuses that token once the session is revoked.
 */
const root = resolve(import.meta.dirname, "../..");
let tdb: TestDatabase;
let tredis: TestRedis;
let ts: SdkTokenService;
let example: ChildProcess;
let base: string;

beforeAll(async () => {
  tdb = await useTestDatabase();
  tredis = await useTestRedis("sdk-example");
  const stream = `${tredis.prefix}revocations`;
  ts = await startSdkTokenService(tdb, { redisUrl: tredis.url, stream });
  example = spawn(
    process.execPath,
    ["--conditions=gatehouse-source", "--import", "tsx", "examples/sdk-service/server.ts"],
    {
      cwd: root,
      env: {
        PATH: process.env.PATH,
        PORT: "0",
        GATEHOUSE_ISSUER: ISSUER,
        GATEHOUSE_TOKEN_SERVICE_URL: ts.httpUrl,
        GATEHOUSE_TOKEN_SERVICE_GRPC_URL: ts.grpcUrl,
        GATEHOUSE_CLIENT_ID: ts.web.clientId,
        GATEHOUSE_CLIENT_SECRET: ts.web.clientSecret,
        REDIS_URL: tredis.url,
        GATEHOUSE_REVOCATION_STREAM: stream,
      },
      stdio: ["ignore", "pipe", "inherit"],
    },
  );
  const lines = createInterface({ input: example.stdout! });
  const exited = once(example, "exit").then(([code]) => {
    throw new Error(`example service exited (${code}) before listening`);
  });
  const listening = (async () => {
    for await (const line of lines) {
      const port = (JSON.parse(line) as { port?: number }).port;
      if (port !== undefined) return port;
    }
    throw new Error("example service closed its output before listening");
  })();
  base = `http://127.0.0.1:${await Promise.race([listening, exited])}`;
}, 60_000);

afterAll(async () => {
  if (example?.exitCode === null) {
    example.kill("SIGKILL");
    await once(example, "exit");
  }
  await ts?.stop();
  await tredis?.cleanup();
  await tdb?.drop();
});

it("signs in, calls its guarded API with the session's token, and stops answering once revoked", async () => {
  const login = await fetch(`${base}/login`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ user: "alice" }),
  });
  expect(login.status).toBe(200);
  const { sessionId } = (await login.json()) as { sessionId: string };

  const orders = await fetch(`${base}/sessions/${sessionId}/orders`);
  expect(orders.status).toBe(200);
  expect(await orders.json()).toMatchObject({ user: "alice" });

  const anonymous = await fetch(`${base}/orders`);
  expect(anonymous.status).toBe(401);
  expect(anonymous.headers.get("www-authenticate")).toBe('Bearer realm="gatehouse"');

  const rpc = grpcTokenClient(ts.service.grpcPort, { id: ts.web.clientId, secret: ts.web.clientSecret });
  try {
    await rpc.revoke({ target: { case: "sessionId", value: sessionId } });
  } finally {
    rpc.close();
  }
  await expect
    .poll(async () => (await fetch(`${base}/sessions/${sessionId}/orders`)).json(), { timeout: 5000 })
    .toMatchObject({ error: "session_revoked" });
});

it("stops cleanly on SIGTERM", async () => {
  example.kill("SIGTERM");
  const [code] = await once(example, "exit");
  expect(code).toBe(0);
});
