import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type TestDatabase, useTestDatabase } from "../support/database.ts";
import { createTestClient } from "../support/token-fixtures.ts";
import { startTokenServiceProcess, type TokenServiceProcess } from "./support/gatehouse-processes.ts";
import {
  describeProblems,
  ledgerProblems,
  readLedgerRows,
  type SessionLedger,
} from "./support/refresh-ledger.ts";
import { rememberSecrets } from "./support/run-directory.ts";
import { inPool, report, seconds, Teardown } from "./support/scenario.ts";
import { issueSessions } from "./support/sessions.ts";
import { CallTally, type TokenCalls, tokenCalls } from "./support/token-calls.ts";
import { sleep } from "./support/wait.ts";

/**
 * Concurrent refresh storm: 1,000 sessions, each refreshed by 10 parallel callers presenting the same
 * refresh token (spread over 4 client connections), for several rounds. Every caller of a round must
 * succeed and get the same successor (one rotates, the others get the grace replay): nobody is logged
 * out, and the database holds exactly one live token per session, the one the callers hold. With the
 * client's grace window short (3 s), presenting an old token after it is reuse: the session is revoked.
 */

// GATEHOUSE_STORM_SESSIONS / GATEHOUSE_STORM_ROUNDS shrink the storm when investigating a failure.
const SESSIONS = Number(process.env.GATEHOUSE_STORM_SESSIONS ?? 1000);
const CALLERS = 10;
const ROUNDS = Math.max(2, Number(process.env.GATEHOUSE_STORM_ROUNDS ?? 3));
const CHANNELS = 4;
/** Sessions stormed at once (x CALLERS calls in flight). */
const SESSIONS_IN_FLIGHT = 20;
const GRACE_SECONDS = 3;
const REUSE_SAMPLE = 100;

const teardown = new Teardown();
let tdb: TestDatabase;
let service: TokenServiceProcess;
let channels: TokenCalls[];

beforeAll(async () => {
  tdb = await useTestDatabase("reliability_refresh_storm");
  teardown.add("test schema", () => tdb.drop());
  const app = await createTestClient(tdb.db.prisma, {
    id: "app",
    roles: ["issuer"],
    refreshGraceSeconds: GRACE_SECONDS,
  });
  rememberSecrets(app.secret);
  service = await startTokenServiceProcess({
    name: "storm-token-service",
    databaseUrl: tdb.url,
    masterKey: randomBytes(32),
    // The storm is about concurrent refreshes of one token, not about overload: one client stands in
    // for many callers here, so its per-client limits are lifted.
    env: {
      GATEHOUSE_DATABASE_POOL_SIZE: "16",
      GATEHOUSE_RATE_LIMIT_REFRESH: "off",
      GATEHOUSE_RATE_LIMIT_ISSUE: "off",
      GATEHOUSE_MAX_IN_FLIGHT_PER_CLIENT: "off",
    },
  });
  teardown.add("token service", () => service.stop());
  channels = Array.from({ length: CHANNELS }, () =>
    tokenCalls(service.grpcPort, { id: "app", secret: app.secret }, { deadlineMs: 30_000 }),
  );
  teardown.add("grpc clients", () => {
    for (const c of channels) c.close();
  });
});

afterAll(() => teardown.run());

const percentile = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;

describe("concurrent refresh storm", () => {
  // 30,000 calls: seconds on a quiet machine, minutes when others load it; correctness is what is asserted.
  it("1,000 sessions x 10 parallel callers: nobody logged out, no fork, reuse after the grace window detected", {
    timeout: 480_000,
  }, async () => {
    const issued = await issueSessions(channels[0]!, "storm-user", SESSIONS);
    const ledgers = new Map<string, SessionLedger>(
      issued.map((s) => [s.sessionId, { received: new Set([s.refreshToken]), current: s.refreshToken }]),
    );
    /** Per session, every token it had in order: [issued, after round 1, ...]. */
    const history = new Map<string, string[]>(issued.map((s) => [s.sessionId, [s.refreshToken]]));
    const sessionIds = [...ledgers.keys()];

    const tally = new CallTally();
    const loggedOut: string[] = [];
    const forkedAnswers: string[] = [];
    const latencies: number[] = [];
    const roundFigures: string[] = [];
    const stormStart = Date.now();
    for (let round = 1; round <= ROUNDS; round++) {
      const roundStart = Date.now();
      await inPool(sessionIds, SESSIONS_IN_FLIGHT, async (sessionId) => {
        const ledger = ledgers.get(sessionId)!;
        const presented = ledger.current;
        const answers = await Promise.all(
          Array.from({ length: CALLERS }, (_, c) =>
            channels[c % CHANNELS]!.refresh({ refreshToken: presented }),
          ),
        );
        const successors = new Set<string>();
        for (const a of answers) {
          tally.add(a);
          latencies.push(a.ms);
          if (a.ok) successors.add(a.value.refreshToken);
        }
        const failed = answers.filter((a) => !a.ok);
        if (failed.length > 0) {
          const why = failed.map((f) => (f.ok ? "" : `${f.status}/${f.failure.reason}`)).join(", ");
          loggedOut.push(
            `round ${round}, session ${sessionId}: ${failed.length} of ${CALLERS} callers failed (${why})`,
          );
        }
        if (successors.size > 1)
          forkedAnswers.push(`round ${round}, session ${sessionId}: ${successors.size} different successors`);
        const [successor] = successors;
        if (successor === undefined) return;
        if (successor === presented)
          forkedAnswers.push(`round ${round}, session ${sessionId}: successor equals the presented token`);
        ledger.received.add(successor);
        ledger.current = successor;
        history.get(sessionId)!.push(successor);
      });
      const ms = Date.now() - roundStart;
      roundFigures.push(`${seconds(ms)} (${Math.round((SESSIONS * CALLERS) / (ms / 1000))}/s)`);
    }
    const stormMs = Date.now() - stormStart;

    const rows = await readLedgerRows(tdb.url, sessionIds);
    const problems = ledgerProblems(ledgers, rows.tokens, rows.revoked);
    const rotations = rows.tokens.filter((t) => !t.live).length;

    // Reuse after the grace window: wait it out, then present the token each sampled session had
    // before the last round (its successor is live and unused: inside the window that would be a
    // replay) and, for a second sample, the token from two rounds back (its successor was used).
    await sleep(GRACE_SECONDS * 1000 + 1000);
    const reuseLast = sessionIds.slice(0, REUSE_SAMPLE);
    const reuseOlder = sessionIds.slice(REUSE_SAMPLE, 2 * REUSE_SAMPLE);
    const untouched = sessionIds.slice(2 * REUSE_SAMPLE);
    const reuse = new CallTally();
    const reuseMissed: string[] = [];
    const present = async (ids: string[], back: number) =>
      inPool(ids, 20, async (sessionId) => {
        const h = history.get(sessionId)!;
        const r = await channels[0]!.refresh({ refreshToken: h[h.length - 1 - back]! });
        reuse.add(r);
        if (r.ok || r.failure.reason !== "refresh_token_reused") {
          reuseMissed.push(`${sessionId}: ${r.ok ? "refreshed" : `${r.status}/${r.failure.reason}`}`);
        }
      });
    await present(reuseLast, 1);
    await present(reuseOlder, 2);
    // The family is revoked: the token its owner still holds no longer works.
    const afterReuse = new CallTally();
    await inPool([...reuseLast, ...reuseOlder], 20, async (sessionId) => {
      afterReuse.add(await channels[1]!.refresh({ refreshToken: ledgers.get(sessionId)!.current }));
    });
    // Sessions nobody replayed are untouched.
    const untouchedTally = new CallTally();
    await inPool(untouched, 40, async (sessionId) => {
      const r = await channels[2]!.refresh({ refreshToken: ledgers.get(sessionId)!.current });
      untouchedTally.add(r);
    });
    const revokedAfter = (await readLedgerRows(tdb.url, sessionIds)).revoked;

    latencies.sort((a, b) => a - b);
    report("Concurrent refresh storm", {
      "what it did": `${SESSIONS} sessions x ${CALLERS} parallel callers (${CHANNELS} connections, ${SESSIONS_IN_FLIGHT * CALLERS} calls in flight) x ${ROUNDS} rounds; grace window ${GRACE_SECONDS} s`,
      "Refresh calls": `${tally.calls} in ${seconds(stormMs)} (${Math.round(tally.calls / (stormMs / 1000))}/s); rounds ${roundFigures.join(", ")}`,
      outcomes: tally.toString(),
      latency: `p50 ${percentile(latencies, 50).toFixed(1)} ms, p99 ${percentile(latencies, 99).toFixed(1)} ms, max ${(latencies.at(-1) ?? 0).toFixed(1)} ms`,
      "rotations in the database": `${rotations} (${SESSIONS * ROUNDS} expected); the other ${tally.calls - rotations} answers were replays of the same successor`,
      "database check":
        describeProblems(problems).join("; ") || "one live token per session, the one all its callers hold",
      "reuse after the grace window": `${reuse.toString()} (${reuseMissed.length} not detected)`,
      "then the holder's token": afterReuse.toString(),
      "untouched sessions refresh": untouchedTally.toString(),
      "sessions revoked in the end": `${revokedAfter.length} (the ${2 * REUSE_SAMPLE} reuse samples)`,
    });

    expect(loggedOut.slice(0, 10), `${loggedOut.length} session-rounds had failing callers`).toEqual([]);
    expect(forkedAnswers.slice(0, 10)).toEqual([]);
    expect(describeProblems(problems)).toEqual([]);
    expect(rotations).toBe(SESSIONS * ROUNDS);
    expect(reuseMissed.slice(0, 10), `${reuseMissed.length} reuses went undetected`).toEqual([]);
    expect(
      [...afterReuse.counts.keys()].every((k) => k.endsWith("/session_revoked")),
      `after reuse the holder's token must be refused as session_revoked (${afterReuse})`,
    ).toBe(true);
    expect(untouchedTally.unexpected([]), untouchedTally.toString()).toEqual([]);
    expect(new Set(revokedAfter)).toEqual(new Set([...reuseLast, ...reuseOlder]));
  });
});
