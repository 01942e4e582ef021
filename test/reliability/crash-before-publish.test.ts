import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type TestDatabase, useTestDatabase } from "../support/database.ts";
import { type TestRedis, useTestRedis } from "../support/redis.ts";
import { startTcpProxy, type TcpProxy } from "../support/tcp-proxy.ts";
import { createTestClient } from "../support/token-fixtures.ts";
import {
  type SidecarProcess,
  startSidecarProcess,
  startTokenServiceProcess,
  type TokenServiceProcess,
} from "./support/gatehouse-processes.ts";
import { rememberSecrets } from "./support/run-directory.ts";
import { report, seconds, Teardown } from "./support/scenario.ts";
import { checkVerdicts, formatCounts, type IssuedSession, issueSessions } from "./support/sessions.ts";
import { CallTally, type TokenCalls, tokenCalls } from "./support/token-calls.ts";
import { waitFor } from "./support/wait.ts";

/**
 * Crash between commit and publish: the token service reaches Redis through a TCP proxy that is cut,
 * so Revoke commits its rows (revocation and outbox) but cannot publish; then the service is killed
 * with SIGKILL. The sidecars, still on Redis, must not have heard of those revocations yet. After the
 * service restarts, its outbox relay must deliver every one of them and the sidecars refuse them all.
 * Runs on the shared Redis under a stream key of its own.
 */

const REVOKE_SESSIONS = 20;
const REVOKE_ACCESS = 10;
const KEPT = 20;
const DELIVERY_LIMIT_MS = 30_000;

const teardown = new Teardown();
let tdb: TestDatabase;
let testRedis: TestRedis;
let proxy: TcpProxy;
let stream: string;
let service: TokenServiceProcess;
let sidecars: { name: string; sidecar: SidecarProcess }[];
let appCredentials: { id: string; secret: string };

beforeAll(async () => {
  tdb = await useTestDatabase("reliability_crash_publish");
  teardown.add("test schema", () => tdb.drop());
  testRedis = await useTestRedis("rel-crash");
  teardown.add("Redis keys", () => testRedis.cleanup());
  stream = `${testRedis.prefix}revocations`;
  proxy = await startTcpProxy({ port: Number(new URL(testRedis.url).port || 6379) });
  teardown.add("TCP proxy", () => proxy.stop());
  const app = await createTestClient(tdb.db.prisma, { id: "app", roles: ["issuer"] });
  rememberSecrets(app.secret);
  appCredentials = { id: "app", secret: app.secret };
  service = await startTokenServiceProcess({
    name: "crash-token-service",
    databaseUrl: tdb.url,
    redisUrl: proxy.url,
    masterKey: randomBytes(32),
    env: { GATEHOUSE_REVOCATION_STREAM: stream },
  });
  teardown.add("token service", () => service.stop());
  sidecars = await Promise.all(
    ["crash-sidecar-a", "crash-sidecar-b"].map(async (name) => {
      const sidecar = await startSidecarProcess({
        name,
        tokenServiceUrl: service.url,
        redisUrl: testRedis.url,
        stream,
      });
      teardown.add(name, () => sidecar.stop());
      return { name, sidecar };
    }),
  );
});

afterAll(() => teardown.run());

/** Of the given outbox events, how many are not published yet. */
const unpublished = async (eventIds: readonly string[]) =>
  Number(
    (
      await tdb.sql.query<{ n: string }>(
        "SELECT count(*) AS n FROM revocation_outbox WHERE event_id = ANY($1::uuid[]) AND published_at IS NULL",
        [eventIds],
      )
    ).rows[0]!.n,
  );

describe("crash between commit and publish", () => {
  it("after kill -9 and a restart, the relay delivers every committed revocation", async () => {
    let calls: TokenCalls = tokenCalls(service.grpcPort, appCredentials);
    const sessions = await issueSessions(calls, "crash-user", REVOKE_SESSIONS + REVOKE_ACCESS + KEPT);
    const bySession = sessions.slice(0, REVOKE_SESSIONS);
    const byAccess = sessions.slice(REVOKE_SESSIONS, REVOKE_SESSIONS + REVOKE_ACCESS);
    const kept = sessions
      .slice(REVOKE_SESSIONS + REVOKE_ACCESS)
      .map((s) => ({ label: `kept ${s.subject}`, token: s.accessToken }));
    const revoked = [...bySession, ...byAccess].map((s) => ({
      label: `revoked ${s.subject}`,
      token: s.accessToken,
    }));

    // Redis unreachable for the token service only; then revocations commit but cannot be published.
    await proxy.stop();
    const tally = new CallTally();
    const propagated = new Map<string, number>();
    const eventIds: string[] = [];
    const revoke = (s: IssuedSession, target: { case: "sessionId" | "accessToken"; value: string }) =>
      calls.revoke({ target, reason: "reliability: crash before publish" }).then((r) => {
        tally.add(r);
        if (!r.ok) throw new Error(`Revoke of ${s.subject} failed: ${r.status} ${r.failure.reason}`);
        eventIds.push(...r.value.eventIds);
        const key = `propagated=${r.value.propagated}`;
        propagated.set(key, (propagated.get(key) ?? 0) + 1);
      });
    await Promise.all([
      ...bySession.map((s) => revoke(s, { case: "sessionId", value: s.sessionId })),
      ...byAccess.map((s) => revoke(s, { case: "accessToken", value: s.accessToken })),
    ]);
    // Right after the last commit: no graceful anything.
    const exit = await service.kill9();
    calls.close();
    const pendingAtCrash = await unpublished(eventIds);
    // The crash window is real: the sidecars have not heard of these revocations.
    const beforeRestart = await checkVerdicts(sidecars, [], revoked);

    await proxy.start();
    const restartAt = Date.now();
    await service.restart();
    const readyAt = Date.now();
    calls = tokenCalls(service.grpcPort, appCredentials);
    let last = beforeRestart;
    const deliveredAt = await waitFor(
      "every sidecar to refuse every revocation committed before the crash",
      async () => {
        last = await checkVerdicts(sidecars, revoked, kept);
        return last.wrong.length === 0 ? Date.now() : undefined;
      },
      { timeoutMs: DELIVERY_LIMIT_MS, intervalMs: 200 },
    ).catch((err: Error) => {
      throw new Error(
        `${err.message}\nstill wrong:\n  ${last.wrong.slice(0, 20).join("\n  ")}\n--- token service ---\n${service.process.tail(20)}`,
      );
    });
    const pendingAfter = await waitFor("the outbox to drain", async () =>
      (await unpublished(eventIds)) === 0 ? 0 : undefined,
    );
    const streamEntries = await testRedis.redis.xlen(stream);
    calls.close();

    report("Crash between commit and publish (kill -9)", {
      "what it did": `Redis cut for the token service; ${REVOKE_SESSIONS} session + ${REVOKE_ACCESS} access-token revocations; kill -9 (${exit.signal}); restart`,
      "Revoke calls": `${tally.calls}: ${tally.toString()}; ${formatCounts(propagated)}`,
      "unpublished outbox rows at crash": `${pendingAtCrash} of the ${eventIds.length} events the Revoke calls wrote`,
      "sidecars before restart": `${beforeRestart.wrong.length} of ${beforeRestart.checked} answers already refused (not yet delivered, as expected)`,
      "token service restart to ready": seconds(readyAt - restartAt),
      "delivered to both sidecars": `${seconds(deliveredAt - restartAt)} after restart began (${seconds(deliveredAt - readyAt)} after ready)`,
      "final check": `${last.checked} answers, refusals ${formatCounts(last.refusals)}; outbox unpublished ${pendingAfter}; stream entries ${streamEntries}`,
    });

    expect(tally.unexpected([]), `every Revoke commits even with Redis unreachable (${tally})`).toEqual([]);
    expect(exit.signal).toBe("SIGKILL");
    expect(eventIds.length).toBeGreaterThanOrEqual(REVOKE_SESSIONS + REVOKE_ACCESS);
    expect(pendingAtCrash, "the revocations must have been committed but not published at the crash").toBe(
      eventIds.length,
    );
    expect(last.wrong).toEqual([]);
    expect(pendingAfter).toBe(0);
  });
});
