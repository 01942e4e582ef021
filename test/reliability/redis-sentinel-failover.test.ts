import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type TestDatabase, useTestDatabase } from "../support/database.ts";
import { createTestClient } from "../support/token-fixtures.ts";
import {
  type SidecarProcess,
  startSidecarProcess,
  startTokenServiceProcess,
  type TokenServiceProcess,
} from "./support/gatehouse-processes.ts";
import { type PrivateSentinels, startPrivateSentinels } from "./support/private-sentinel.ts";
import { rememberSecrets } from "./support/run-directory.ts";
import { report, seconds, Teardown } from "./support/scenario.ts";
import { checkVerdicts, formatCounts, type IssuedSession, issueSessions } from "./support/sessions.ts";
import { CallTally, type TokenCalls, tokenCalls } from "./support/token-calls.ts";
import { sleep, waitFor } from "./support/wait.ts";

/**
 * Redis Sentinel: a primary, a replica and three real redis-sentinel processes; a token service and
 * three sidecars find the primary through the sentinels (REDIS_SENTINELS, passwords and an ACL user
 * on both sides, nothing of REDIS_URL). Revocations stream in the whole time while the primary fails
 * over twice: once by SENTINEL FAILOVER (nothing lost), then by SIGKILL after replication was cut,
 * so the promoted replica lacks the last entries the dead primary acknowledged (what asynchronous
 * replication does). The relay must notice the stream behind what it published and rebuild it from
 * the outbox, and every sidecar must end up refusing every revoked token and passing the others.
 */

const KEPT = 30;
const SESSIONS = 800;
const RECOVERY_LIMIT_MS = 30_000;

const teardown = new Teardown();
let tdb: TestDatabase;
let group: PrivateSentinels;
let service: TokenServiceProcess;
let sidecars: { name: string; sidecar: SidecarProcess }[];
let calls: TokenCalls;

beforeAll(async () => {
  tdb = await useTestDatabase("reliability_sentinel");
  teardown.add("test schema", () => tdb.drop());
  group = await startPrivateSentinels(3);
  teardown.add("sentinels, primary and replica", () => group.destroy());
  await group.settled();
  const app = await createTestClient(tdb.db.prisma, { id: "app", roles: ["issuer", "revoker"] });
  rememberSecrets(app.secret);
  service = await startTokenServiceProcess({
    name: "sentinel-token-service",
    databaseUrl: tdb.url,
    masterKey: randomBytes(32),
    env: { ...group.env, GATEHOUSE_REVOCATION: "stream" },
  });
  teardown.add("token service", () => service.stop());
  const sidecarEnv: Record<string, Record<string, string>> = {
    "sentinel-sidecar-a": {},
    "sentinel-sidecar-b": {},
    // The sentinels' default user named explicitly: REDIS_SENTINEL_USERNAME goes through AUTH user pass.
    "sentinel-sidecar-c": { REDIS_SENTINEL_USERNAME: "default" },
  };
  sidecars = await Promise.all(
    Object.entries(sidecarEnv).map(async ([name, extra]) => {
      const sidecar = await startSidecarProcess({
        name,
        tokenServiceUrl: service.url,
        env: { ...group.env, ...extra, GATEHOUSE_REVOCATION: "stream" },
      });
      teardown.add(name, () => sidecar.stop());
      return { name, sidecar };
    }),
  );
  calls = tokenCalls(service.grpcPort, { id: "app", secret: app.secret });
  teardown.add("grpc client", () => calls.close());
});

afterAll(() => teardown.run());

/**
 * Revokes sessions one after another (two at a time, about 12 a second) until stopped or out of
 * sessions, tagging each with the phase it started in.
 */
function revokeContinuously(sessions: readonly IssuedSession[]) {
  const revoked: { label: string; token: string }[] = [];
  const tally = new CallTally();
  const propagated = new Map<string, number>();
  const failures: string[] = [];
  let phase = "before any failover";
  let next = 0;
  let stopped = false;
  const worker = async () => {
    while (!stopped && next < sessions.length) {
      const i = next++;
      const s = sessions[i]!;
      const by = (["session", "access", "refresh"] as const)[i % 3]!;
      const target =
        by === "session"
          ? { case: "sessionId" as const, value: s.sessionId }
          : by === "access"
            ? { case: "accessToken" as const, value: s.accessToken }
            : { case: "refreshToken" as const, value: s.refreshToken };
      const at = phase;
      const r = await calls.revoke({ target, reason: `reliability: sentinel ${at}` });
      tally.add(r);
      if (!r.ok) {
        failures.push(`${at}: ${r.status} ${r.failure.reason} ${r.failure.message}`);
        continue;
      }
      const key = `${at}: propagated=${r.value.propagated}`;
      propagated.set(key, (propagated.get(key) ?? 0) + 1);
      revoked.push({ label: `${at} ${by} ${s.subject}`, token: s.accessToken });
      await sleep(150);
    }
  };
  const workers = [worker(), worker()];
  return {
    revoked,
    tally,
    propagated,
    failures,
    setPhase(p: string) {
      phase = p;
    },
    count: () => revoked.length,
    async stop() {
      stopped = true;
      await Promise.all(workers);
    },
  };
}

describe("Redis Sentinel failover", () => {
  it("loses no revocation across a graceful and a lossy failover; every sidecar converges", async () => {
    const sessions = await issueSessions(calls, "sentinel-user", KEPT + SESSIONS);
    const kept = sessions.slice(0, KEPT).map((s) => ({ label: `kept ${s.subject}`, token: s.accessToken }));
    const stream = revokeContinuously(sessions.slice(KEPT));
    const serviceLogBefore = readFileSync(service.process.logFile, "utf8").length;

    await sleep(1000);
    const firstPrimary = await group.primaryPort();

    // 1. SENTINEL FAILOVER: the primary steps down, the replica takes over; clients are disconnected.
    stream.setPhase("graceful failover");
    const t1 = Date.now();
    await group.failover();
    const secondPrimary = await group.newPrimary(firstPrimary);
    const graceful = Date.now() - t1;
    stream.setPhase("after graceful failover");
    await sleep(1500);
    // The old primary must be a replica in sync again before the next fault.
    await group.settled();
    const beforeLossy = stream.count();

    // 2. The primary accepts entries its replica never sees, then dies.
    stream.setPhase("replication cut");
    await group.cutReplication();
    await waitFor("revocations the replica never sees", () => stream.count() >= beforeLossy + 20, {
      timeoutMs: 10_000,
      intervalMs: 20,
    });
    const onlyOnPrimary = stream.count() - beforeLossy;
    stream.setPhase("primary killed");
    const t2 = Date.now();
    const killed = await group.killPrimary();
    expect(killed).toBe(secondPrimary);
    const thirdPrimary = await group.newPrimary(killed);
    const lossy = Date.now() - t2;
    stream.setPhase("after lossy failover");
    await sleep(2000);
    await stream.stop();

    // Each check asks every sidecar about every token; on this machine one takes seconds, so the
    // figure is when the first passing check started, not how fast the sidecars caught up.
    const checks: string[] = [];
    let last: Awaited<ReturnType<typeof checkVerdicts>> | undefined;
    let agreedAt = 0;
    try {
      agreedAt = await waitFor(
        "every sidecar to refuse every revoked token and pass the others",
        async () => {
          const startedAt = Date.now();
          last = await checkVerdicts(sidecars, stream.revoked, kept);
          checks.push(
            `started ${seconds(startedAt - t2)} after the kill, took ${seconds(Date.now() - startedAt)}: ${last.wrong.length} wrong`,
          );
          return last.wrong.length === 0 ? startedAt : undefined;
        },
        { timeoutMs: RECOVERY_LIMIT_MS, intervalMs: 250 },
      );
    } catch (err) {
      throw new Error(
        `${(err as Error).message}\nstill wrong after ${seconds(RECOVERY_LIMIT_MS)}:\n  ${(last?.wrong ?? []).slice(0, 20).join("\n  ")}\n` +
          `--- ${sidecars[0]!.name} ---\n${sidecars[0]!.sidecar.process.tail(15)}\n--- token service ---\n${service.process.tail(15)}`,
      );
    }
    await sleep(2000);
    const settled = await checkVerdicts(sidecars, stream.revoked, kept);

    const serviceLog = readFileSync(service.process.logFile, "utf8").slice(serviceLogBefore);
    const republished = serviceLog
      .split("\n")
      .filter((l) => l.includes("revocation stream rebuilt from the outbox"));
    const sidecarResets = sidecars.map(
      ({ name, sidecar }) =>
        `${name} ${
          readFileSync(sidecar.process.logFile, "utf8")
            .split("\n")
            .filter((l) => l.includes("revocation stream was reset")).length
        }`,
    );
    const survivor = group.admin(thirdPrimary);
    const streamLength = await survivor.xlen("gatehouse:revocations");

    report(
      "Redis Sentinel failover (3 sentinels; SENTINEL FAILOVER, then SIGKILL after cutting replication)",
      {
        "what it did": `3 sidecars, ${stream.revoked.length} revocations streamed through two failovers (${onlyOnPrimary} while the replica was cut off), ${kept.length} kept sessions`,
        primaries: `:${firstPrimary} → :${secondPrimary} (SENTINEL FAILOVER, promoted in ${seconds(graceful)}) → :${thirdPrimary} (kill, promoted in ${seconds(lossy)})`,
        "Revoke calls": `${stream.tally.calls}: ${stream.tally.toString()}`,
        "propagated at answer": formatCounts(stream.propagated),
        "relay rebuilds": `${republished.length} (${republished.map((l) => JSON.parse(l).republished).join(", ")} entries)`,
        "sidecar re-bootstraps": sidecarResets.join(", "),
        recovery: `every sidecar agreed with the database in a check started ${seconds(agreedAt - t2)} after the primary was killed`,
        "checks until then": checks.join(" | "),
        "after 2 s more": `${settled.checked} sidecar answers, ${settled.wrong.length} wrong; refusals ${formatCounts(settled.refusals)}`,
        "stream entries on the last primary": streamLength,
      },
    );

    expect(stream.failures, "every Revoke must succeed, Redis failing over or not").toEqual([]);
    // The lost entries were noticed: the relay rebuilt the stream from the outbox after the kill.
    expect(republished.length).toBeGreaterThanOrEqual(1);
    expect(settled.wrong).toEqual([]);
    expect(
      [...settled.refusals.keys()],
      "revoked tokens are refused as revoked, not for stale state",
    ).not.toContain("revocation_state_stale");
  });
});
