import { createRequire } from "node:module";
import { Worker } from "node:worker_threads";
import { create, toBinary } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { IssueRequestSchema } from "../../services/gen/proto/gatehouse/v1/token_service_pb.ts";
import { createLogger } from "../../services/shared/logging/index.ts";
import { DEFAULT_SCRYPT, hashClientSecret } from "../../services/token/clients/client-secret.ts";
import { type RunningTokenService, startTokenService } from "../../services/token/token-service.ts";
import { type TestDatabase, useTestDatabase } from "../support/database.ts";
import { type GrpcFailure, grpcTokenClient } from "../support/token-clients.ts";
import { createTestClient } from "../support/token-fixtures.ts";
import { testServiceSettings } from "../support/token-service-settings.ts";

/**
 * Issue 14 item 10: an unauthenticated flood of made-up Basic credentials — unknown client ids and
 * known ids with wrong secrets — must not make a client with the right secret fail. The flood runs
 * in its own thread (as another process would); the real clients keep calling meanwhile, one of them
 * for the first time, and the credential cache is short so the others are re-checked under the flood.
 */

const FLOOD_CONCURRENCY = 320;
const FLOOD_MS = 3000;
/** Short, so known callers' pairs go stale and are hashed again while the flood runs. */
const CACHE_TTL_MS = 100;
/** Calls each real client keeps going at once. */
const REAL_CONCURRENCY = 4;

let tdb: TestDatabase;
let service: RunningTokenService;
const creds: Record<string, { id: string; secret: string }> = {};

beforeAll(async () => {
  tdb = await useTestDatabase();
  for (const id of ["alpha", "beta", "gamma"]) {
    const { secret } = await createTestClient(tdb.db.prisma, { id });
    // A costly hash for the flooded ids (four times the default), so that on this shared machine the
    // flood can keep the checks busy as a faster flood would on a faster one.
    const params = id === "gamma" ? DEFAULT_SCRYPT : { ...DEFAULT_SCRYPT, N: DEFAULT_SCRYPT.N * 4 };
    await tdb.db.prisma.client.update({
      where: { id },
      data: { secretHash: await hashClientSecret(secret, params) },
    });
    creds[id] = { id, secret };
  }
  service = await startTokenService({
    settings: testServiceSettings({ credentialCacheTtl: CACHE_TTL_MS }),
    database: { kind: "postgres", url: tdb.url },
    logger: createLogger({ level: "silent", component: "token", pretty: false }),
  });
});
afterAll(async () => {
  await service?.shutdown();
  await tdb?.drop();
});

/** One Issue after another for `ms`, every `everyMs`; what failed, and how many succeeded. */
async function realCalls(
  id: string,
  ms: number,
  everyMs = 50,
): Promise<{ ok: number; slowestMs: number; failures: GrpcFailure[] }> {
  const client = grpcTokenClient(service.grpcPort, creds[id]);
  const failures: GrpcFailure[] = [];
  let ok = 0;
  let slowestMs = 0;
  const until = performance.now() + ms;
  try {
    while (performance.now() < until) {
      const started = performance.now();
      try {
        await client.issue({ subject: `${id}-user`, audience: ["orders"] });
        ok++;
      } catch (err) {
        failures.push(err as GrpcFailure);
      }
      slowestMs = Math.max(slowestMs, performance.now() - started);
      const rest = everyMs - (performance.now() - started);
      if (rest > 0) await new Promise((r) => setTimeout(r, rest));
    }
  } finally {
    client.close();
  }
  return { ok, slowestMs: Math.round(slowestMs), failures };
}

/** Each call a fresh made-up credential: odd calls an unknown id, even ones a known id with a wrong secret. */
const FLOOD_WORKER = `
const { workerData, parentPort } = require("node:worker_threads");
const { randomBytes } = require("node:crypto");
const grpc = require(workerData.grpcPath);
const id = (b) => b;
const Client = grpc.makeGenericClientConstructor({
  issue: { path: "/gatehouse.v1.TokenService/Issue", requestStream: false, responseStream: false,
    requestSerialize: id, requestDeserialize: id, responseSerialize: id, responseDeserialize: id },
}, "Flood");
const client = new Client("127.0.0.1:" + workerData.port, grpc.credentials.createInsecure());
const body = Buffer.from(workerData.body);
const byCode = {};
let n = 0;
// The flood's length counts from its first answer: starting this thread can take a second on a busy machine.
let until = Infinity;
function loop() {
  if (Date.now() >= until) return Promise.resolve();
  const i = n++;
  const clientId = i % 2 ? "made-up-" + randomBytes(6).toString("hex") : workerData.known[i % workerData.known.length];
  const md = new grpc.Metadata();
  md.set("authorization", "Basic " + Buffer.from(clientId + ":gths_" + randomBytes(32).toString("base64url")).toString("base64"));
  return new Promise((resolve) => client.issue(body, md, (err) => {
    const code = err ? err.code : 0;
    byCode[code] = (byCode[code] || 0) + 1;
    if (until === Infinity) {
      until = Date.now() + workerData.ms;
      parentPort.postMessage("under way");
    }
    resolve();
  })).then(loop);
}
Promise.all(Array.from({ length: workerData.concurrency }, loop)).then(() => {
  client.close();
  parentPort.postMessage(byCode);
});
`;

/** Starts the flood; `underWay` resolves at its first answer, `done` with its answers by gRPC code. */
function flood(
  ms: number,
  known: string[],
): { underWay: Promise<void>; done: Promise<Record<string, number>> } {
  const worker = new Worker(FLOOD_WORKER, {
    eval: true,
    workerData: {
      grpcPath: createRequire(import.meta.url).resolve("@grpc/grpc-js"),
      port: service.grpcPort,
      body: toBinary(IssueRequestSchema, create(IssueRequestSchema, { subject: "x", audience: ["orders"] })),
      ms,
      concurrency: FLOOD_CONCURRENCY,
      known,
    },
  });
  let underWay!: () => void;
  const started = new Promise<void>((resolve) => {
    underWay = resolve;
  });
  const done = new Promise<Record<string, number>>((resolve, reject) => {
    worker.on("message", (m: "under way" | Record<string, number>) => {
      if (m === "under way") return underWay();
      resolve(m);
      void worker.terminate();
    });
    worker.once("error", reject);
  });
  return { underWay: started, done };
}

describe("credential flood: made-up Basic credentials cannot make known clients fail", () => {
  it(`serves every call of clients with the right secret while ${FLOOD_CONCURRENCY} made-up logins run at once`, async () => {
    // alpha and beta have called before; gamma logs in for the first time during the flood.
    for (const id of ["alpha", "beta"]) expect((await realCalls(id, 100)).failures).toEqual([]);
    const flooding = flood(FLOOD_MS, ["alpha", "beta"]);
    await flooding.underWay;
    const during = (id: string) =>
      Promise.all(Array.from({ length: REAL_CONCURRENCY }, () => realCalls(id, FLOOD_MS - 500))).then(
        (r) => ({
          ok: r.reduce((n, x) => n + x.ok, 0),
          slowestMs: Math.max(...r.map((x) => x.slowestMs)),
          failures: r.flatMap((x) => x.failures),
        }),
      );
    const [alpha, beta, gamma, flooded] = await Promise.all([
      during("alpha"),
      during("beta"),
      during("gamma"),
      flooding.done,
    ]);
    console.log("credential flood", JSON.stringify({ flooded, alpha, beta, gamma }));
    const floodCalls = Object.values(flooded).reduce((a, b) => a + b, 0);
    expect(floodCalls).toBeGreaterThanOrEqual(FLOOD_CONCURRENCY);
    // Every made-up credential was refused: UNAUTHENTICATED (invalid_client) or RESOURCE_EXHAUSTED.
    expect(Object.keys(flooded).every((c) => c === "16" || c === "8")).toBe(true);
    for (const real of [alpha, beta, gamma]) {
      expect(real.failures).toEqual([]);
      expect(real.ok).toBeGreaterThan(0);
    }
  }, 90_000);
});
