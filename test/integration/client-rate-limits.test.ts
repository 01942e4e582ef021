import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ClientRole } from "../../services/gen/proto/gatehouse/v1/admin_service_pb.ts";
import type { RunningTokenService } from "../../services/token/token-service.ts";
import { grpcAdminClient } from "../support/admin-clients.ts";
import { type TestDatabase, useTestDatabase } from "../support/database.ts";
import { type GrpcFailure, grpcTokenClient } from "../support/token-clients.ts";
import { startTokenReplicas } from "../support/token-replicas.ts";

/**
 * Issue 18: a client's own rate limit (rate_limit_per_second / rate_limit_burst, set through the
 * AdminService) replaces the service-wide GATEHOUSE_RATE_LIMIT_* for that client, with its burst,
 * on every replica, over gRPC and OAuth, and is counted as limit="client_rate". Two token services
 * on one schema, as two replicas; limits are per replica (each keeps its own buckets).
 *
 * Rates here are 1/s so the wall clock refills at most one token per second of test: counts are
 * bounded by burst + elapsed seconds, never by how fast this machine is.
 */

let tdb: TestDatabase;
let a: RunningTokenService;
let b: RunningTokenService;
let creds: Record<string, { id: string; secret: string }>;

beforeAll(async () => {
  tdb = await useTestDatabase();
  ({ a, b, creds } = await startTokenReplicas(tdb, [
    ["root", ["admin"]],
    ["busy", ["issuer"]],
  ]));
  const admin = grpcAdminClient(a.grpcPort, creds.root);
  try {
    const created = await admin.createClient({
      clientId: "slow",
      name: "slow",
      roles: [ClientRole.ISSUER, ClientRole.SERVICE],
      allowedAudiences: ["orders"],
      rateLimitPerSecond: 1,
      rateLimitBurst: 4,
    });
    expect(created.client).toMatchObject({ rateLimitPerSecond: 1, rateLimitBurst: 4 });
    creds.slow = { id: "slow", secret: created.clientSecret };
  } finally {
    admin.close();
  }
});
afterAll(async () => {
  await a?.shutdown();
  await b?.shutdown();
  await tdb?.drop();
});

/** Issues `n` times in a row on `service`; "ok" or the refusal's reason for each, and the seconds taken. */
async function issueRun(service: RunningTokenService, who: { id: string; secret: string }, n: number) {
  const client = grpcTokenClient(service.grpcPort, who);
  const outcomes: string[] = [];
  const failures: GrpcFailure[] = [];
  const started = performance.now();
  try {
    for (let i = 0; i < n; i++) {
      try {
        await client.issue({ subject: `u${i}`, audience: ["orders"] });
        outcomes.push("ok");
      } catch (err) {
        const f = err as GrpcFailure;
        failures.push(f);
        outcomes.push(f.reason ?? String(f.code));
      }
    }
  } finally {
    client.close();
  }
  return { outcomes, failures, seconds: (performance.now() - started) / 1000 };
}

const admitted = (outcomes: string[]) => outcomes.filter((o) => o === "ok").length;

async function rejections(service: RunningTokenService, client: string, limit: string): Promise<number> {
  const metric = (await service.metrics.getSingleMetric("gatehouse_overload_rejections_total")?.get()) ?? {
    values: [],
  };
  return metric.values
    .filter((v) => v.labels.client === client && v.labels.limit === limit)
    .reduce((sum, v) => sum + v.value, 0);
}

describe("a client's own rate limit", () => {
  it("gives the limited client its burst, then rate_limited with a retry delay, while another client on the same service is served", async () => {
    const slow = await issueRun(a, creds.slow!, 12);
    // The bucket starts full: the whole burst is admitted, in order, then refusals.
    expect(slow.outcomes.slice(0, 4)).toEqual(["ok", "ok", "ok", "ok"]);
    expect(admitted(slow.outcomes)).toBeLessThanOrEqual(4 + Math.ceil(slow.seconds));
    expect(slow.outcomes).toContain("rate_limited");
    expect(slow.failures[0]).toMatchObject({
      code: 8, // RESOURCE_EXHAUSTED
      reason: "rate_limited",
      metadata: { limit: "client_rate", method: "Issue" },
    });
    // Same service, the server default (1000/2000): not one refusal.
    const busy = await issueRun(a, creds.busy!, 40);
    expect(busy.outcomes.every((o) => o === "ok")).toBe(true);

    const refused = slow.outcomes.length - admitted(slow.outcomes);
    expect(await rejections(a, "slow", "client_rate")).toBe(refused);
    expect(await rejections(a, "busy", "client_rate")).toBe(0);
    expect(await rejections(a, "busy", "rate")).toBe(0);
  }, 30_000);

  it("covers the OAuth client_credentials grant (IssueServiceToken): 429 with retry-after", async () => {
    const basic = `Basic ${Buffer.from("slow:" + creds.slow!.secret).toString("base64")}`;
    const statuses: number[] = [];
    let retryAfter: string | null = null;
    let error: unknown;
    for (let i = 0; i < 10; i++) {
      const res = await fetch(`http://127.0.0.1:${b.httpPort}/oauth2/token`, {
        method: "POST",
        headers: { authorization: basic, "content-type": "application/x-www-form-urlencoded" },
        body: "grant_type=client_credentials&audience=orders",
      });
      statuses.push(res.status);
      const body = (await res.json()) as Record<string, unknown>;
      if (res.status === 429 && retryAfter === null) {
        retryAfter = res.headers.get("retry-after");
        error = body.error;
      }
    }
    expect(statuses.slice(0, 4)).toEqual([200, 200, 200, 200]);
    expect(statuses).toContain(429);
    expect(error).toBe("temporarily_unavailable");
    expect(Number(retryAfter)).toBeGreaterThanOrEqual(1);
  }, 30_000);

  it("a limit changed through the admin API on one replica applies on the other without restart", async () => {
    const admin = grpcAdminClient(a.grpcPort, creds.root);
    try {
      // B caches busy's record (server defaults) first, so the change has a cached record to replace.
      expect(admitted((await issueRun(b, creds.busy!, 5)).outcomes)).toBe(5);
      await admin.updateClient({
        clientId: "busy",
        rateLimitPerSecond: 1,
        rateLimitBurst: 2,
        updateMask: { paths: ["rate_limit_per_second", "rate_limit_burst"] },
      });
      // Within the watch's bound (about a second) B holds busy to 1/s, burst 2.
      const deadline = performance.now() + 3000;
      let run = await issueRun(b, creds.busy!, 8);
      while (!run.outcomes.includes("rate_limited") && performance.now() < deadline) {
        await new Promise((r) => setTimeout(r, 100));
        run = await issueRun(b, creds.busy!, 8);
      }
      expect(run.outcomes).toContain("rate_limited");
      expect(await rejections(b, "busy", "client_rate")).toBeGreaterThan(0);

      // Raised well above the default burst: B lets a run through that its 1/s would not.
      await admin.updateClient({
        clientId: "slow",
        rateLimitPerSecond: 500,
        rateLimitBurst: 500,
        updateMask: { paths: ["rate_limit_per_second", "rate_limit_burst"] },
      });
      const raisedBy = performance.now() + 3000;
      let raised = await issueRun(b, creds.slow!, 30);
      while (raised.outcomes.includes("rate_limited") && performance.now() < raisedBy) {
        await new Promise((r) => setTimeout(r, 100));
        raised = await issueRun(b, creds.slow!, 30);
      }
      expect(admitted(raised.outcomes)).toBe(30);

      // Cleared: the server defaults apply to busy again on B.
      await admin.updateClient({
        clientId: "busy",
        updateMask: { paths: ["rate_limit_per_second", "rate_limit_burst"] },
      });
      const clearedBy = performance.now() + 3000;
      let cleared = await issueRun(b, creds.busy!, 30);
      while (cleared.outcomes.includes("rate_limited") && performance.now() < clearedBy) {
        await new Promise((r) => setTimeout(r, 100));
        cleared = await issueRun(b, creds.busy!, 30);
      }
      expect(admitted(cleared.outcomes)).toBe(30);
      expect((await admin.getClient({ clientId: "busy" })).client).toMatchObject({
        rateLimitPerSecond: 0,
        rateLimitBurst: 0,
      });
    } finally {
      admin.close();
    }
  }, 30_000);

  it("refuses a burst without a rate with invalid_request naming the field", async () => {
    const admin = grpcAdminClient(a.grpcPort, creds.root);
    try {
      await expect(
        admin.updateClient({
          clientId: "slow",
          updateMask: { paths: ["rate_limit_per_second"] },
        }),
      ).rejects.toMatchObject({
        code: 3,
        reason: "invalid_request",
        metadata: { field: "rate_limit_burst" },
      });
    } finally {
      admin.close();
    }
  });
});
