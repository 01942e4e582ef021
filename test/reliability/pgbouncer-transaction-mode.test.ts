import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { keyLifecyclePolicy } from "../../services/token/keys/key-lifecycle.ts";
import { createSigningKeys } from "../../services/token/keys/signing-keys.ts";
import { type TestDatabase, useTestDatabase } from "../support/database.ts";
import { type RunningPgbouncer, startPgbouncer } from "../support/pgbouncer.ts";
import { type TestRedis, useTestRedis } from "../support/redis.ts";
import { createTestClient } from "../support/token-fixtures.ts";
import {
  type SidecarProcess,
  startSidecarProcess,
  startTokenServiceProcess,
  type TokenServiceProcess,
} from "./support/gatehouse-processes.ts";
import { rememberSecrets } from "./support/run-directory.ts";
import { inPool, report, seconds, Teardown } from "./support/scenario.ts";
import { checkVerdicts, formatCounts, issueSessions } from "./support/sessions.ts";
import { CallTally, type TokenCalls, tokenCalls } from "./support/token-calls.ts";
import { waitFor } from "./support/wait.ts";

/**
 * The whole token service behind PgBouncer in transaction mode (Debian's 1.18: no named prepared
 * statements, no `options` start-up parameter, and consecutive transactions of one client connection
 * on whichever server connection is free). Two `gatehouse serve` replicas reach Postgres only through
 * it, over four server connections, with GATEHOUSE_DATABASE_PREPARED_STATEMENTS=false and no
 * search_path anywhere (the pooler sets none: statements name their schema). Token flows, the relay,
 * the janitor and a scheduled key rotation must all work, with nothing lost and no lock stranded.
 *
 * Regression: the relay used to take a session-level advisory lock and release it with a later
 * autocommit statement. Behind a transaction pooler the unlock can run on another server connection,
 * so the lock stays on the first one and every later pass of every replica finds it taken: Revoke
 * answers propagated: false and sidecars never hear of revocations. Here the lock must never outlive
 * a pass, and both replicas must keep publishing (`propagated: true` on every Revoke).
 */

const DAY = 86_400_000;
const SESSIONS = 60;
const REVOKE_SESSIONS = 20;
const REVOKE_ACCESS = 10;
const DUE_SESSIONS = 40;
/** Fewer server connections than the replicas' pools hold together, so transactions change connections. */
const SERVER_CONNECTIONS = 4;
/** Class (high half) of the relay's advisory lock key, as sql/relay-lock.ts builds it. */
const RELAY_LOCK_CLASS = 1195922008;

const teardown = new Teardown();
let tdb: TestDatabase;
let testRedis: TestRedis;
let pooler: RunningPgbouncer;
let stream: string;
let replicas: TokenServiceProcess[];
let sidecars: { name: string; sidecar: SidecarProcess }[];
let app: { id: string; secret: string };
let kids: { old: string; next: string };

/**
 * Keys as a rotation a month ago left them: an active key 31 days old and its successor staged a day
 * ago, so the first scheduled step of a replica (at start) is due to activate the successor.
 */
async function ageKeys(masterKey: Buffer): Promise<{ old: string; next: string }> {
  const policy = keyLifecyclePolicy({
    keyRotationInterval: 30 * DAY,
    keyPublishDelay: 3_600_000,
    jwksMaxAge: 300_000,
    maxAccessTokenTtl: 3_600_000,
    reloadMs: 30_000,
  });
  const at = (ms: number) => createSigningKeys({ prisma: tdb.db.prisma, masterKey, policy, now: () => ms });
  const by = { actor: "system:key-rotation" as const };
  const first = await at(Date.now() - 31 * DAY).rotate({ schedule: true, force: false }, by);
  const second = await at(Date.now() - DAY).rotate({ schedule: true, force: false }, by);
  return { old: first.activated!.kid, next: second.staged!.kid };
}

const q = async <T>(text: string, params: unknown[] = []) => (await tdb.sql.query(text, params)).rows as T[];

/** Advisory locks of the relay (any schema's) held on any backend right now. */
const relayLocks = async () =>
  (
    await q<{ n: number }>(
      "SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND classid = $1::int::oid",
      [RELAY_LOCK_CLASS],
    )
  )[0]!.n;

beforeAll(async () => {
  tdb = await useTestDatabase("reliability_pgbouncer");
  teardown.add("test schema", () => tdb.drop());
  testRedis = await useTestRedis("rel-pgbouncer");
  teardown.add("Redis keys", () => testRedis.cleanup());
  stream = `${testRedis.prefix}revocations`;
  const masterKey = randomBytes(32);
  kids = await ageKeys(masterKey);
  const created = await createTestClient(tdb.db.prisma, { id: "app", roles: ["issuer", "revoker"] });
  rememberSecrets(created.secret);
  app = { id: "app", secret: created.secret };
  // Sessions past the janitor's retention (1 h) for the replicas' janitor to delete.
  await q(
    `INSERT INTO sessions (subject, client_id, idle_expires_at, expires_at, revoked_at)
     SELECT 'due-' || g, 'app', now() - interval '2 days', now() - interval '2 days', now() - interval '2 days'
       FROM generate_series(1, $1::int) g`,
    [DUE_SESSIONS],
  );
  pooler = await startPgbouncer(tdb.schema, SERVER_CONNECTIONS, { searchPath: false });
  teardown.add("pgbouncer", () => pooler.stop());
  const pooled = `${pooler.url}?schema=${tdb.schema}`;
  replicas = [];
  for (const name of ["pool-token-service-a", "pool-token-service-b"]) {
    const replica = await startTokenServiceProcess({
      name,
      databaseUrl: pooled,
      redisUrl: testRedis.url,
      masterKey,
      env: {
        GATEHOUSE_REVOCATION_STREAM: stream,
        GATEHOUSE_DATABASE_PREPARED_STATEMENTS: "false",
        GATEHOUSE_KEY_ROTATION: "on",
        GATEHOUSE_SESSION_RETENTION: "1h",
        GATEHOUSE_JANITOR_INTERVAL: "10s",
        // Two replicas' relays, Revokes and refreshes share four server connections on a 2-core machine
        // that runs other suites too: the default 500 ms budget measures the machine, not the relay.
        GATEHOUSE_PUBLISH_TIMEOUT: "3s",
      },
    });
    teardown.add(name, () => replica.stop());
    replicas.push(replica);
  }
  sidecars = await Promise.all(
    ["pool-sidecar-a", "pool-sidecar-b"].map(async (name, i) => {
      const sidecar = await startSidecarProcess({
        name,
        tokenServiceUrl: replicas[i]!.url,
        redisUrl: testRedis.url,
        stream,
      });
      teardown.add(name, () => sidecar.stop());
      return { name, sidecar };
    }),
  );
});

afterAll(() => teardown.run());

describe("the token service behind PgBouncer in transaction mode", () => {
  it("issues, refreshes and revokes through two replicas; the relay publishes every event; no lock is stranded", async () => {
    const started = Date.now();
    const calls: TokenCalls[] = replicas.map((r) => tokenCalls(r.grpcPort, app));
    const via = (i: number) => calls[i % calls.length]!;
    try {
      const sessions = await issueSessions(calls[0]!, "pool-user", SESSIONS);

      // Refresh every session twice, alternating replicas; a third of them twice at once (the grace race).
      const refreshes = new CallTally();
      await inPool(sessions, 8, async (s, i) => {
        let token = s.refreshToken;
        for (let round = 0; round < 2; round++) {
          const racing = i % 3 === 0 && round === 1;
          const answers = await Promise.all(
            (racing ? [0, 1] : [0]).map((k) => via(i + round + k).refresh({ refreshToken: token })),
          );
          for (const a of answers) refreshes.add(a);
          const first = answers[0]!;
          if (!first.ok)
            throw new Error(`Refresh of ${s.subject} failed: ${first.status} ${first.failure.reason}`);
          if (racing && answers[1]!.ok) expect(answers[1]!.value.refreshToken).toBe(first.value.refreshToken);
          token = first.value.refreshToken;
          s.accessToken = first.value.accessToken;
        }
        s.refreshToken = token;
      });

      // Revocations from both replicas: every one must be published before Revoke answers.
      const revokes = new CallTally();
      const propagated = new Map<string, number>();
      const eventIds: string[] = [];
      const bySession = sessions.slice(0, REVOKE_SESSIONS);
      const byAccess = sessions.slice(REVOKE_SESSIONS, REVOKE_SESSIONS + REVOKE_ACCESS);
      const kept = sessions.slice(REVOKE_SESSIONS + REVOKE_ACCESS);
      await inPool(
        [
          ...bySession.map((s) => ({ s, target: { case: "sessionId" as const, value: s.sessionId } })),
          ...byAccess.map((s) => ({ s, target: { case: "accessToken" as const, value: s.accessToken } })),
        ],
        8,
        async ({ s, target }, i) => {
          const r = await via(i).revoke({ target, reason: "reliability: behind pgbouncer" });
          revokes.add(r);
          if (!r.ok) throw new Error(`Revoke of ${s.subject} failed: ${r.status} ${r.failure.reason}`);
          eventIds.push(...r.value.eventIds);
          const key = `propagated=${r.value.propagated}`;
          propagated.set(key, (propagated.get(key) ?? 0) + 1);
        },
      );
      const revoked = [...bySession, ...byAccess].map((s) => ({
        label: `revoked ${s.subject}`,
        token: s.accessToken,
      }));
      const keptTokens = kept.map((s) => ({ label: `kept ${s.subject}`, token: s.accessToken }));
      let last = await checkVerdicts(sidecars, revoked, keptTokens);
      await waitFor(
        "every sidecar to refuse every revoked token and accept the others",
        async () => {
          last = await checkVerdicts(sidecars, revoked, keptTokens);
          return last.wrong.length === 0;
        },
        { timeoutMs: 20_000, intervalMs: 200 },
      ).catch((err: Error) => {
        throw new Error(`${err.message}\nstill wrong:\n  ${last.wrong.slice(0, 10).join("\n  ")}`);
      });
      const unpublished = (
        await q<{ n: number }>(
          "SELECT count(*)::int AS n FROM revocation_outbox WHERE event_id = ANY($1::uuid[]) AND published_at IS NULL",
          [eventIds],
        )
      )[0]!.n;
      // Between passes nothing of the relay's may remain on any server connection.
      const locksLeft = await waitFor("no relay lock held between passes", async () =>
        (await relayLocks()) === 0 ? 0 : undefined,
      );

      // The janitor (one replica at a time) deleted the sessions past retention.
      const dueLeft = await waitFor("the janitor to delete the due sessions", async () => {
        const [row] = await q<{ n: number }>(
          "SELECT count(*)::int AS n FROM sessions WHERE subject LIKE 'due-%'",
        );
        return row!.n === 0 ? 0 : undefined;
      });

      // The scheduled rotation ran once, at the replicas' first step: the staged successor signs now.
      const keys = await q<{ kid: string; status: string }>(
        "SELECT kid, status FROM signing_keys ORDER BY created_at",
      );
      const rotations = await q<{ n: number }>(
        `SELECT count(*)::int AS n FROM audit_events
          WHERE actor = 'system:key-rotation' AND action = 'signing_key.activate' AND target_id = $1`,
        [kids.next],
      );
      const issuedAfter = await calls[1]!.issue({
        subject: "after-rotation",
        audience: ["orders"],
        scopes: [],
      });
      const issuedKid = issuedAfter.ok
        ? JSON.parse(Buffer.from(issuedAfter.value.accessToken.split(".")[0]!, "base64url").toString()).kid
        : null;
      const poolerErrors = pooler
        .log()
        .split("\n")
        .filter((l) => /ERROR|WARNING/.test(l) && !/client close request|client unexpected eof/.test(l));

      report(
        `Token service behind PgBouncer (transaction mode, ${SERVER_CONNECTIONS} server connections, 2 replicas)`,
        {
          "what it did": `${SESSIONS} Issue, ${refreshes.calls} Refresh (a third raced), ${REVOKE_SESSIONS} session + ${REVOKE_ACCESS} access-token Revoke, across 2 replicas`,
          Refresh: `${refreshes.calls}: ${refreshes.toString()}`,
          Revoke: `${revokes.calls}: ${revokes.toString()}; ${formatCounts(propagated)}`,
          sidecars: `${last.checked} answers, refusals ${formatCounts(last.refusals)}`,
          "outbox unpublished / relay locks left": `${unpublished} / ${locksLeft}`,
          "janitor: due sessions left": dueLeft,
          "signing keys": keys.map((k) => `${k.kid.slice(0, 8)}:${k.status}`).join(", "),
          "pgbouncer errors": poolerErrors.length,
          elapsed: seconds(Date.now() - started),
        },
      );

      expect(refreshes.unexpected([]), `every Refresh succeeds (${refreshes})`).toEqual([]);
      expect(revokes.unexpected([]), `every Revoke succeeds (${revokes})`).toEqual([]);
      expect(propagated.get("propagated=false") ?? 0, "Revoke waited for a relay that never published").toBe(
        0,
      );
      expect(eventIds.length).toBeGreaterThanOrEqual(REVOKE_SESSIONS + REVOKE_ACCESS);
      expect(last.wrong).toEqual([]);
      expect(unpublished).toBe(0);
      expect(dueLeft).toBe(0);
      expect(keys.find((k) => k.kid === kids.next)?.status).toBe("active");
      expect(keys.find((k) => k.kid === kids.old)?.status).toBe("retiring");
      expect(rotations[0]!.n, "the scheduled activation happened exactly once").toBe(1);
      expect(issuedKid).toBe(kids.next);
      expect(poolerErrors, pooler.log().slice(-2000)).toEqual([]);
    } finally {
      for (const c of calls) c.close();
    }
  });
});
