import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type TestDatabase, useTestDatabase } from "../support/database.ts";
import { createTestClient } from "../support/token-fixtures.ts";
import {
  type SidecarProcess,
  startSidecarProcess,
  startTokenServiceProcess,
  type TokenServiceProcess,
} from "./support/gatehouse-processes.ts";
import { type PrivateRedis, startPrivateRedis } from "./support/private-redis.ts";
import { rememberSecrets } from "./support/run-directory.ts";
import { report, seconds, Teardown } from "./support/scenario.ts";
import { checkVerdicts, formatCounts, type IssuedSession, issueSessions } from "./support/sessions.ts";
import { CallTally, type TokenCalls, tokenCalls } from "./support/token-calls.ts";
import { sleep, waitFor } from "./support/wait.ts";

/**
 * Redis loss: a token service and two sidecars share a private Redis (so it can be killed and
 * FLUSHALLed without touching the shared one). Sessions and single access tokens are revoked before
 * any fault, while Redis is down, right after it came back empty, and right after a FLUSHALL. After
 * recovery every sidecar must refuse every revoked token and still let every other token through.
 */

const KEPT = 30;
/** How long after the last fault the sidecars must agree with the database, by themselves. */
const RECOVERY_LIMIT_MS = 30_000;

const teardown = new Teardown();
let tdb: TestDatabase;
let redis: PrivateRedis;
let service: TokenServiceProcess;
let sidecars: { name: string; sidecar: SidecarProcess }[];
let calls: TokenCalls;

beforeAll(async () => {
  tdb = await useTestDatabase("reliability_redis_loss");
  teardown.add("test schema", () => tdb.drop());
  redis = await startPrivateRedis();
  teardown.add("private Redis", () => redis.destroy());
  const app = await createTestClient(tdb.db.prisma, { id: "app", roles: ["issuer", "revoker"] });
  rememberSecrets(app.secret);
  service = await startTokenServiceProcess({
    name: "redis-loss-token-service",
    databaseUrl: tdb.url,
    redisUrl: redis.url,
    masterKey: randomBytes(32),
  });
  teardown.add("token service", () => service.stop());
  sidecars = await Promise.all(
    ["redis-loss-sidecar-a", "redis-loss-sidecar-b"].map(async (name) => {
      const sidecar = await startSidecarProcess({ name, tokenServiceUrl: service.url, redisUrl: redis.url });
      teardown.add(name, () => sidecar.stop());
      return { name, sidecar };
    }),
  );
  calls = tokenCalls(service.grpcPort, { id: "app", secret: app.secret });
  teardown.add("grpc client", () => calls.close());
});

afterAll(() => teardown.run());

describe("Redis loss", () => {
  it("every revoked token is refused by every sidecar after restart and FLUSHALL; the others pass", async () => {
    const sessions = await issueSessions(calls, "redis-user", KEPT + 60);
    const pick = (() => {
      let next = 0;
      return (n: number) => {
        const group = sessions.slice(next, next + n);
        next += n;
        return group;
      };
    })();
    const kept = pick(KEPT).map((s) => ({ label: `kept ${s.subject}`, token: s.accessToken }));
    const revoked: { label: string; token: string }[] = [];
    const tally = new CallTally();
    const propagated = new Map<string, number>();
    const revokeSessions = async (
      phase: string,
      group: IssuedSession[],
      by: "session" | "access" | "refresh",
    ) => {
      await Promise.all(
        group.map(async (s) => {
          const target =
            by === "session"
              ? { case: "sessionId" as const, value: s.sessionId }
              : by === "access"
                ? { case: "accessToken" as const, value: s.accessToken }
                : { case: "refreshToken" as const, value: s.refreshToken };
          const r = await calls.revoke({ target, reason: `reliability: ${phase}` });
          tally.add(r);
          if (!r.ok)
            throw new Error(`Revoke (${phase}) failed: ${r.status} ${r.failure.reason} ${r.failure.message}`);
          const key = `${phase}: propagated=${r.value.propagated}`;
          propagated.set(key, (propagated.get(key) ?? 0) + 1);
          revoked.push({ label: `${phase} ${by} ${s.subject}`, token: s.accessToken });
        }),
      );
    };

    // Before any fault: the baseline every later phase is compared with.
    await revokeSessions("before faults", pick(10), "session");
    let first = await checkVerdicts(sidecars, revoked, kept);
    const baseline = await waitFor(
      "sidecars to refuse the first revocations",
      async () => {
        first = await checkVerdicts(sidecars, revoked, kept);
        return first.wrong.length === 0 ? first : undefined;
      },
      { timeoutMs: 10_000 },
    ).catch((err: Error) => {
      throw new Error(`${err.message}: ${first.wrong.slice(0, 10).join("; ")}`);
    });

    // Redis dies; revocations made while it is down must reach the sidecars once it is back.
    const t0 = Date.now();
    await redis.stop();
    await revokeSessions("Redis down", pick(10), "session");
    await revokeSessions("Redis down", pick(5), "access");
    await sleep(1500);
    await redis.start(); // empty: nothing on disk
    await revokeSessions("Redis back empty", pick(10), "refresh");
    await sleep(1000);

    // FLUSHALL while everything runs, revocations right after it.
    await revokeSessions("before FLUSHALL", pick(5), "session");
    await redis.flushAll();
    const flushedAt = Date.now();
    await revokeSessions("after FLUSHALL", pick(10), "session");
    await revokeSessions("after FLUSHALL", pick(5), "access");
    await redis.flushAll();
    const secondFlushAt = Date.now();
    await revokeSessions("after 2nd FLUSHALL", pick(5), "refresh");

    let last = baseline;
    let agreedAt = 0;
    try {
      agreedAt = await waitFor(
        "every sidecar to refuse every revoked token and pass the others",
        async () => {
          last = await checkVerdicts(sidecars, revoked, kept);
          return last.wrong.length === 0 ? Date.now() : undefined;
        },
        { timeoutMs: RECOVERY_LIMIT_MS, intervalMs: 250 },
      );
    } catch (err) {
      throw new Error(
        `${(err as Error).message}\nstill wrong after ${seconds(RECOVERY_LIMIT_MS)}:\n  ${last.wrong.slice(0, 20).join("\n  ")}\n` +
          `--- ${sidecars[0]!.name} ---\n${sidecars[0]!.sidecar.process.tail(15)}\n--- token service ---\n${service.process.tail(15)}`,
      );
    }
    // Once more a little later: agreement must last, not be a moment between two re-bootstraps.
    await sleep(2000);
    const settled = await checkVerdicts(sidecars, revoked, kept);
    const streamLength = await redis.client().xlen("gatehouse:revocations");

    report("Redis loss (restart while revoking, two FLUSHALLs)", {
      "what it did": `2 sidecars, ${sessions.length} sessions; ${revoked.length} revoked in 6 phases around a Redis kill (down ~1.5 s, back empty) and two FLUSHALLs; ${kept.length} kept`,
      "Revoke calls": `${tally.calls}: ${tally.toString()}`,
      "propagated at answer": formatCounts(propagated),
      "baseline check": `${baseline.checked} sidecar answers, refusals ${formatCounts(baseline.refusals)}`,
      recovery: `sidecars agree ${seconds(agreedAt - secondFlushAt)} after the last FLUSHALL (${seconds(agreedAt - flushedAt)} after the first, ${seconds(agreedAt - t0)} after Redis was killed)`,
      "after 2 s more": `${settled.checked} sidecar answers, ${settled.wrong.length} wrong; refusals ${formatCounts(settled.refusals)}`,
      "stream entries now": streamLength,
    });

    expect(tally.unexpected([]), `every Revoke must succeed, Redis or not (${tally})`).toEqual([]);
    expect(settled.wrong).toEqual([]);
    expect(
      [...settled.refusals.keys()],
      "revoked tokens are refused as revoked, not for stale state",
    ).not.toContain("revocation_state_stale");
  });
});
