import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "../../services/shared/logging/index.ts";
import { createKeyRing } from "../../services/token/keys/key-ring.ts";
import { grpcAdminClient } from "../support/admin-clients.ts";
import { type TestDatabase, useTestDatabase } from "../support/database.ts";
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
import { checkVerdicts, formatCounts, type IssuedSession, issueSessions } from "./support/sessions.ts";
import { CallTally, type TokenCalls, tokenCalls } from "./support/token-calls.ts";
import { sleep, waitFor } from "./support/wait.ts";

/**
 * Issue 18: three token-service replicas (`gatehouse serve`) on one database schema and one Redis
 * stream, as a Deployment of three would run.
 *
 * - One is killed with SIGKILL in the middle of a stream of revocations: every revocation that
 *   committed (whichever replica committed it, the dead one included) reaches the stream and the
 *   sidecar, and the survivors' relays keep publishing.
 * - The session janitor and the audit pruner run on one replica at a time. The evidence is the
 *   database's, not timing: a statement trigger on `sessions` and `audit_events` takes a
 *   transaction-scoped advisory lock of its own whenever rows are deleted and records whether it got
 *   it, then holds it for a while. Two deleting transactions at once (two janitors, two pruners)
 *   would find it taken. This holds whatever lock the jobs themselves use (session- or
 *   transaction-scoped advisory lock, or a lease row), and a self-check shows the witness does see
 *   overlapping deletes.
 * - A client change (disable, rate limit) made through one replica reaches all three.
 * - A scheduled key rotation that falls due while all three run happens exactly once: one key
 *   staged and one activated, by `system:key-rotation`, and all three sign with it.
 *
 * Runs on the shared Postgres (a schema of its own) and Redis (a stream key of its own).
 */

/**
 * Enough work that the janitor's pass outlasts its 10 s interval (60 batches, each holding the
 * witness for WITNESS_HOLD_S), so every replica not holding the lock tries at least once meanwhile,
 * and the pruner's pass (8 batches of 1000) spans the three replicas' start-up passes.
 */
const SESSIONS_DUE = 600;
const JANITOR_BATCH = 10;
const AUDIT_DUE = 8000;
const REVOKED = 90;
const KEPT = 15;
/** Revocations completed before the kill. */
const KILL_AFTER = 30;
/** How long each witnessed delete holds the witness lock: long against a transaction's own work. */
const WITNESS_HOLD_S = 0.2;
/** Scheduled rotation checks every minute; the new key must be active within two. */
const ROTATION_LIMIT_MS = 150_000;

const teardown = new Teardown();
let tdb: TestDatabase;
let testRedis: TestRedis;
let stream: string;
let replicas: { name: string; service: TokenServiceProcess }[];
let sidecar: SidecarProcess;
const creds: Record<string, { id: string; secret: string }> = {};
let seedKid: string;
let startedAt: number;
let selfCheck: boolean[];

const q = async <R extends Record<string, unknown>>(text: string, params: unknown[] = []) =>
  (await tdb.sql.query<R>(text, params)).rows;
const one = async (text: string, params: unknown[] = []) =>
  Number(Object.values((await q(text, params))[0] ?? { n: 0 })[0]);

/** The witness: see the file's comment. Everything is schema-qualified (the services' search_path is theirs). */
async function installWitness(schema: string): Promise<void> {
  const s = `"${schema}"`;
  await q(`CREATE TABLE ${s}.delete_witness (
             id bigserial PRIMARY KEY, tbl text NOT NULL, pid int NOT NULL, xid bigint NOT NULL,
             deleted int NOT NULL, exclusive boolean NOT NULL)`);
  await q(`CREATE FUNCTION ${s}.witness_delete() RETURNS trigger LANGUAGE plpgsql AS $$
           DECLARE n int; got boolean;
           BEGIN
             SELECT count(*) INTO n FROM gone;
             IF n = 0 THEN RETURN NULL; END IF;
             got := pg_try_advisory_xact_lock(hashtext('witness:' || TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME));
             INSERT INTO ${s}.delete_witness (tbl, pid, xid, deleted, exclusive)
               VALUES (TG_TABLE_NAME, pg_backend_pid(), txid_current(), n, got);
             PERFORM pg_sleep(${WITNESS_HOLD_S});
             RETURN NULL;
           END $$`);
  for (const table of ["sessions", "audit_events"]) {
    await q(`CREATE TRIGGER witness_${table} AFTER DELETE ON ${s}.${table}
             REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION ${s}.witness_delete()`);
  }
}

/**
 * Two transactions deleting at once, by hand, before any replica runs: the witness must record one
 * of them as not exclusive. Returns the `exclusive` flags it recorded, and clears them.
 */
async function witnessSelfCheck(schema: string): Promise<boolean[]> {
  await q(
    `INSERT INTO "${schema}".sessions (subject, client_id, idle_expires_at, expires_at)
     VALUES ('witness-1', 'app', now(), now()), ('witness-2', 'app', now(), now())`,
  );
  const first = await tdb.db.pool!.connect();
  const second = await tdb.db.pool!.connect();
  try {
    await first.query("BEGIN");
    await second.query("BEGIN");
    await first.query(`DELETE FROM "${schema}".sessions WHERE subject = 'witness-1'`);
    // The first transaction still holds the witness lock: this one must find it taken.
    await second.query(`DELETE FROM "${schema}".sessions WHERE subject = 'witness-2'`);
    await first.query("COMMIT");
    await second.query("COMMIT");
  } finally {
    first.release();
    second.release();
  }
  const flags = (await witnessed("sessions")).map((r) => r.exclusive).sort();
  await q(`DELETE FROM "${schema}".delete_witness`);
  return flags;
}

const witnessed = (table: string) =>
  q<{ pid: number; deleted: number; exclusive: boolean }>(
    `SELECT pid, deleted, exclusive FROM "${tdb.schema}".delete_witness WHERE tbl = $1 ORDER BY id`,
    [table],
  );

/** A metric's value summed over the label sets that match, from a replica's /metrics. */
async function metric(service: TokenServiceProcess, name: string, labels: Record<string, string> = {}) {
  const text = await (
    await fetch(`http://127.0.0.1:${service.adminPort}/metrics`, { signal: AbortSignal.timeout(5000) })
  ).text();
  let sum = 0;
  for (const line of text.split("\n")) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (!Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) continue;
    sum += Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return sum;
}

const admin = (service: TokenServiceProcess) => grpcAdminClient(service.adminPort, creds.root);

const kidOf = (jwt: string) =>
  (JSON.parse(Buffer.from(jwt.split(".")[0]!, "base64url").toString("utf8")) as { kid: string }).kid;

/** Issue for `who` on `service`: "ok", or the refusal's reason. */
async function issueOutcome(service: TokenServiceProcess, who: string, subject = "probe") {
  const calls = tokenCalls(service.grpcPort, creds[who]!);
  try {
    const r = await calls.issue({ subject, audience: ["orders"] });
    return r.ok ? "ok" : (r.failure.reason ?? r.status);
  } finally {
    calls.close();
  }
}

beforeAll(async () => {
  tdb = await useTestDatabase("reliability_replicas");
  teardown.add("test schema", () => tdb.drop());
  testRedis = await useTestRedis("rel-replicas");
  teardown.add("Redis keys", () => testRedis.cleanup());
  stream = `${testRedis.prefix}revocations`;
  for (const [id, roles] of [
    ["root", ["admin"]],
    ["app", ["issuer"]],
    ["doomed", ["issuer"]],
    ["limited", ["issuer"]],
  ] as const) {
    const { secret } = await createTestClient(tdb.db.prisma, { id, roles: [...roles] });
    rememberSecrets(secret);
    creds[id] = { id, secret };
  }
  await installWitness(tdb.schema);
  selfCheck = await witnessSelfCheck(tdb.schema);

  // The active key was activated three hours ago: with a one-hour interval, rotation is due at start.
  const masterKey = randomBytes(32);
  const seedRing = createKeyRing({
    prisma: tdb.db.prisma,
    masterKey,
    log: createLogger({ level: "silent", component: "seed", pretty: false }),
    now: () => Date.now() - 3 * 3_600_000,
  });
  await seedRing.start();
  seedRing.stop();
  seedKid = (await q<{ kid: string }>("SELECT kid FROM signing_keys WHERE status = 'active'"))[0]!.kid;

  // Work for the janitor (sessions expired 100 days ago) and the pruner (events 30 days old).
  await q(
    `INSERT INTO sessions (subject, client_id, created_at, last_used_at, idle_expires_at, expires_at)
     SELECT 'due-' || g, 'app', now() - interval '200 days', now() - interval '200 days',
            now() - interval '100 days', now() - interval '100 days'
       FROM generate_series(1, $1::int) g`,
    [SESSIONS_DUE],
  );
  await q(
    `INSERT INTO audit_events (occurred_at, actor, action, outcome)
     SELECT now() - interval '30 days', 'system:reliability-seed', 'seed.old', 'success'
       FROM generate_series(1, $1::int)`,
    [AUDIT_DUE],
  );

  startedAt = Date.now();
  replicas = await Promise.all(
    ["replica-a", "replica-b", "replica-c"].map(async (name) => {
      const service = await startTokenServiceProcess({
        name,
        databaseUrl: tdb.url,
        redisUrl: testRedis.url,
        masterKey,
        env: {
          GATEHOUSE_REVOCATION_STREAM: stream,
          GATEHOUSE_KEY_ROTATION: "on",
          GATEHOUSE_KEY_ROTATION_INTERVAL: "1h",
          GATEHOUSE_KEY_PUBLISH_DELAY: "0s",
          GATEHOUSE_JWKS_MAX_AGE: "1s",
          GATEHOUSE_AUDIT_RETENTION: "1d",
          GATEHOUSE_SESSION_RETENTION: "1h",
          GATEHOUSE_JANITOR_INTERVAL: "10s",
          GATEHOUSE_JANITOR_BATCH_SIZE: String(JANITOR_BATCH),
        },
      });
      teardown.add(name, () => service.stop());
      return { name, service };
    }),
  );
  sidecar = await startSidecarProcess({
    name: "replicas-sidecar",
    tokenServiceUrl: replicas[0]!.service.url,
    redisUrl: testRedis.url,
    stream,
  });
  teardown.add("sidecar", () => sidecar.stop());
});

afterAll(() => teardown.run());

describe("three token-service replicas on one database", () => {
  it("the witness sees two deletes at once (self-check: the evidence below can fail)", () => {
    expect(selfCheck).toEqual([false, true]);
  });

  it("the janitor and the audit pruner run on one replica at a time", async () => {
    await waitFor(
      "the janitor to delete every due session",
      async () => (await one("SELECT count(*) FROM sessions WHERE subject LIKE 'due-%'")) === 0,
      { timeoutMs: 60_000, intervalMs: 250 },
    );
    await waitFor(
      "the audit pruner to delete every event past retention",
      async () => (await one("SELECT count(*) FROM audit_events WHERE action = 'seed.old'")) === 0,
      { timeoutMs: 60_000, intervalMs: 250 },
    );
    const janitorDeletes = await witnessed("sessions");
    const pruneDeletes = await witnessed("audit_events");
    const perReplica = await Promise.all(
      replicas.map(async ({ name, service }) => ({
        name,
        janitor: await metric(service, "gatehouse_janitor_deleted_total", { table: "sessions" }),
      })),
    );
    const pruneRecords = await q<{ deleted: number }>(
      "SELECT (details->>'deleted')::int AS deleted FROM audit_events WHERE actor = 'system:audit-retention' AND action = 'audit.prune'",
    );
    const sum = (xs: { deleted: number }[]) => xs.reduce((n, x) => n + x.deleted, 0);

    report("Three replicas: janitor and audit pruner", {
      "janitor deletes (statements)": `${janitorDeletes.length} on ${new Set(janitorDeletes.map((d) => d.pid)).size} connection(s), ${sum(janitorDeletes)} sessions; overlapping: ${janitorDeletes.filter((d) => !d.exclusive).length}`,
      "janitor by replica (gatehouse_janitor_deleted_total)": perReplica
        .map((r) => `${r.name} ${r.janitor}`)
        .join(", "),
      "pruner deletes (statements)": `${pruneDeletes.length} on ${new Set(pruneDeletes.map((d) => d.pid)).size} connection(s), ${sum(pruneDeletes)} events; overlapping: ${pruneDeletes.filter((d) => !d.exclusive).length}`,
      "audit.prune records": pruneRecords.map((r) => r.deleted).join(", "),
    });

    // Every due row went exactly once, and no two deleting transactions ever overlapped.
    expect(sum(janitorDeletes)).toBe(SESSIONS_DUE);
    expect(janitorDeletes.length).toBeGreaterThanOrEqual(SESSIONS_DUE / JANITOR_BATCH);
    expect(janitorDeletes.filter((d) => !d.exclusive)).toEqual([]);
    expect(perReplica.reduce((n, r) => n + r.janitor, 0)).toBe(SESSIONS_DUE);
    expect(sum(pruneDeletes)).toBe(AUDIT_DUE);
    expect(pruneDeletes.filter((d) => !d.exclusive)).toEqual([]);
    expect(sum(pruneRecords)).toBe(AUDIT_DUE);
  });

  it("kill -9 of one replica mid-stream loses no revocation, and the relay keeps publishing", async () => {
    const [a, b, c] = replicas.map((r) => r.service) as [
      TokenServiceProcess,
      TokenServiceProcess,
      TokenServiceProcess,
    ];
    const calls: TokenCalls[] = [a, b, c].map((s) => tokenCalls(s.grpcPort, creds.app!));
    try {
      const issued: IssuedSession[] = [];
      for (let r = 0; r < 3; r++) {
        issued.push(...(await issueSessions(calls[r]!, `replica-${r}`, (REVOKED + KEPT) / 3)));
      }
      const targets = issued.slice(0, REVOKED);
      const kept = issued.slice(REVOKED).map((s) => ({ label: `kept ${s.subject}`, token: s.accessToken }));
      const tally = new CallTally();
      const retried = new CallTally();
      let completed = 0;
      let killed: Promise<unknown> | undefined;
      await inPool(targets, 6, async (s, i) => {
        // Sessions by id, every third one by its access token (a jti revocation).
        const target =
          i % 3 === 2
            ? { case: "accessToken" as const, value: s.accessToken }
            : { case: "sessionId" as const, value: s.sessionId };
        const req = { target, reason: "reliability: replica killed mid-stream" };
        const first = await calls[i % 3]!.revoke(req);
        tally.add(first);
        if (!first.ok) {
          // What a client behind a balancer does when its replica vanished: try another one.
          const again = await calls[0]!.revoke(req);
          retried.add(again);
          if (!again.ok) throw new Error(`Revoke of ${s.subject} failed on retry: ${again.status}`);
        }
        if (++completed === KILL_AFTER) killed = c.kill9();
      });
      const exit = (await killed) as { signal: string | null };

      // After the kill, the survivors' relays must publish everything committed, the dead one's too.
      await waitFor(
        "the outbox to drain on the surviving replicas",
        async () => (await one("SELECT count(*) FROM revocation_outbox WHERE published_at IS NULL")) === 0,
        { timeoutMs: 30_000, intervalMs: 200 },
      );
      // And it keeps doing so: revocations after the kill, on both survivors.
      const late = await issueSessions(calls[1]!, "after-kill", 6);
      for (const [i, s] of late.entries()) {
        const r = await calls[i % 2]!.revoke({ target: { case: "sessionId", value: s.sessionId } });
        tally.add(r);
        expect(r.ok).toBe(true);
      }
      await waitFor(
        "the outbox to drain again",
        async () => (await one("SELECT count(*) FROM revocation_outbox WHERE published_at IS NULL")) === 0,
        { timeoutMs: 30_000, intervalMs: 200 },
      );

      const outboxIds = (await q<{ event_id: string }>("SELECT event_id::text FROM revocation_outbox")).map(
        (r) => r.event_id,
      );
      const entries = await testRedis.redis.xrange(stream, "-", "+");
      const onStream = new Set(
        entries.map(([, fields]) => (JSON.parse(fields[fields.indexOf("e") + 1]!) as { id: string }).id),
      );
      const missing = outboxIds.filter((id) => !onStream.has(id));
      const revokedTokens = [...targets, ...late].map((s) => ({
        label: `revoked ${s.subject}`,
        token: s.accessToken,
      }));
      let verdicts = await checkVerdicts([{ name: "sidecar", sidecar }], revokedTokens, kept);
      await waitFor(
        "the sidecar to refuse every revoked token",
        async () => {
          verdicts = await checkVerdicts([{ name: "sidecar", sidecar }], revokedTokens, kept);
          return verdicts.wrong.length === 0;
        },
        { timeoutMs: 15_000, intervalMs: 200 },
      ).catch(() => undefined);
      const dbRevoked = await one(
        "SELECT count(*) FROM sessions WHERE revoked_at IS NOT NULL AND (subject LIKE 'replica-%' OR subject LIKE 'after-kill-%')",
      );
      const relayPublished = (
        await Promise.all(
          [a, b].map((s) => metric(s, "gatehouse_revocation_events_published_total", { path: "relay" })),
        )
      ).reduce((n, x) => n + x, 0);

      report("Three replicas: kill -9 mid-stream", {
        "what it did": `${REVOKED} revocations (${REVOKED / 3} by access token) round-robin over 3 replicas, 6 at a time; kill -9 of replica-c after ${KILL_AFTER} (${exit.signal}); 6 more on the survivors`,
        "Revoke calls": `${tally.calls}: ${tally.toString()}; retried on replica-a: ${retried.calls}: ${retried.toString() || "-"}`,
        "outbox events / on the stream": `${outboxIds.length} / ${outboxIds.length - missing.length} (missing ${missing.length})`,
        "published by the survivors' relays": relayPublished,
        "sidecar check": `${verdicts.checked} answers, refusals ${formatCounts(verdicts.refusals)}, wrong ${verdicts.wrong.length}`,
      });

      expect(exit.signal).toBe("SIGKILL");
      expect(tally.unexpected(["UNAVAILABLE", "DEADLINE_EXCEEDED", "CANCELLED", "INTERNAL"])).toEqual([]);
      expect(missing).toEqual([]);
      expect(verdicts.wrong).toEqual([]);
      // Every session revoked by id, and every session whose jti went: the sessions table agrees.
      expect(dbRevoked).toBeGreaterThanOrEqual(targets.filter((_, i) => i % 3 !== 2).length + late.length);
    } finally {
      for (const c of calls) c.close();
    }
    // Back to three for what follows.
    await c.restart();
  });

  it("a client change made on one replica reaches all three: disable and rate limit", async () => {
    const services = replicas.map((r) => r.service);
    // Every replica has verified (and cached) both clients.
    for (const s of services) {
      expect(await issueOutcome(s, "doomed")).toBe("ok");
      expect(await issueOutcome(s, "limited")).toBe("ok");
    }
    const adm = admin(services[1]!);
    const took: Record<string, number> = {};
    try {
      await adm.disableClient({ clientId: "doomed", reason: "reliability: replicas" });
      const disabledAt = performance.now();
      for (const [i, s] of services.entries()) {
        await waitFor(`replica ${i} to refuse the disabled client`, async () =>
          (await issueOutcome(s, "doomed")) === "invalid_client" ? true : undefined,
        );
        took[`disable on ${replicas[i]!.name}`] = performance.now() - disabledAt;
      }

      await adm.updateClient({
        clientId: "limited",
        rateLimitPerSecond: 1,
        rateLimitBurst: 2,
        updateMask: { paths: ["rate_limit_per_second", "rate_limit_burst"] },
      });
      const limitedAt = performance.now();
      for (const [i, s] of services.entries()) {
        await waitFor(`replica ${i} to hold the client to its new limit`, async () => {
          const outcomes: string[] = [];
          for (let n = 0; n < 6; n++) outcomes.push(await issueOutcome(s, "limited", `l${n}`));
          return outcomes.includes("rate_limited") ? true : undefined;
        });
        took[`rate limit on ${replicas[i]!.name}`] = performance.now() - limitedAt;
        expect(
          await metric(s, "gatehouse_overload_rejections_total", { client: "limited", limit: "client_rate" }),
        ).toBeGreaterThan(0);
      }
    } finally {
      adm.close();
    }
    report(
      "Three replicas: a client change made on replica-b",
      Object.fromEntries(Object.entries(took).map(([k, ms]) => [k, seconds(ms)])),
    );
  });

  it("a scheduled key rotation happens exactly once across the three", async () => {
    const rotated = await waitFor(
      "the scheduled rotation to activate a new key",
      async () =>
        (
          await q<{ kid: string }>("SELECT kid FROM signing_keys WHERE status = 'active' AND kid <> $1", [
            seedKid,
          ])
        )[0]?.kid,
      { timeoutMs: Math.max(1000, startedAt + ROTATION_LIMIT_MS - Date.now()), intervalMs: 500 },
    );
    // Give any other replica's next step the chance to do something wrong (a second stage).
    await sleep(6000);
    const keys = await q<{ kid: string; status: string }>(
      "SELECT kid, status FROM signing_keys ORDER BY created_at",
    );
    const steps = await q<{ action: string; target_id: string }>(
      "SELECT action, target_id FROM audit_events WHERE actor = 'system:key-rotation' ORDER BY id",
    );
    // Every replica signs with the new key once its key ring has reloaded.
    const signing: string[] = [];
    for (const { service } of replicas) {
      signing.push(
        await waitFor(
          "every replica to sign with the new key",
          async () => {
            const calls = tokenCalls(service.grpcPort, creds.app!);
            try {
              const r = await calls.issue({ subject: "rotated", audience: ["orders"] });
              return r.ok && kidOf(r.value.accessToken) === rotated ? rotated : undefined;
            } finally {
              calls.close();
            }
          },
          { timeoutMs: 15_000, intervalMs: 500 },
        ),
      );
    }
    report("Three replicas: scheduled key rotation", {
      keys: keys.map((k) => `${k.kid.slice(0, 8)} ${k.status}`).join(", "),
      "system:key-rotation audit": steps.map((s) => `${s.action} ${s.target_id.slice(0, 8)}`).join(", "),
    });
    expect(keys).toEqual([
      { kid: seedKid, status: "retiring" },
      { kid: rotated, status: "active" },
    ]);
    expect(steps).toEqual([
      { action: "signing_key.create", target_id: rotated },
      { action: "signing_key.activate", target_id: rotated },
    ]);
    expect(signing).toEqual([rotated, rotated, rotated]);
  });
});
