import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";
import { create } from "@bufbuild/protobuf";
import { PGlite } from "@electric-sql/pglite";
import pg from "pg";
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import {
  IssueRequestSchema,
  RefreshRequestSchema,
} from "../../services/gen/proto/gatehouse/v1/token_service_pb.ts";
import { createDatabase, type Database, migrate } from "../../services/shared/database/index.ts";
import { servingPoolConfig } from "../../services/shared/database/postgres.ts";
import { withSqlScope } from "../../services/shared/database/sql-scope.ts";
import { createLogger } from "../../services/shared/logging/index.ts";
import { createMetricsRegistry, type Registry } from "../../services/shared/metrics/index.ts";
import { loadSettings } from "../../services/shared/settings/index.ts";
import type { ClientRecord } from "../../services/token/clients/client-record.ts";
import { issue } from "../../services/token/flows/issue-flow.ts";
import { refresh } from "../../services/token/flows/refresh-flow.ts";
import { createSessionJanitor, type SessionJanitor } from "../../services/token/janitor/session-janitor.ts";
import { pruneSessionsBatch } from "../../services/token/sql/prune-sessions.ts";
import {
  pgliteExecutor,
  poolExecutor,
  type SqlExecutor,
  type SqlStatement,
  sql,
} from "../../services/token/store/sql-executor.ts";
import {
  pgliteTransactions,
  poolTransactions,
  type SqlTransactions,
} from "../../services/token/store/sql-transaction.ts";
import { startTokenService } from "../../services/token/token-service.ts";
import { tokenServiceSettings } from "../../services/token/token-service-settings.ts";
import { type TestDatabase, useTestDatabase } from "../support/database.ts";
import { TEST_DATABASE_URL } from "../support/services.ts";
import { createTestClient, flowDeps, testClock } from "../support/token-fixtures.ts";

const DAY = 86_400_000;
const MINUTE = 60_000;
const RETENTION = 7 * DAY;
const BIN = fileURLToPath(new URL("../../bin/gatehouse.mjs", import.meta.url));
const log = createLogger({ level: "silent", component: "test", pretty: false });
const clock = testClock();
/** The janitor lock's key, as sql/janitor-lock.ts builds it. */
const lockKey = () => `((1751673454::bigint << 32) | '"${tdb.schema}".sessions'::regclass::oid::bigint)`;

let tdb: TestDatabase;
let replica2: Database;
let web: ClientRecord;
beforeAll(async () => {
  tdb = await useTestDatabase();
  // A second replica's own pool on the same schema, as another token service process would have.
  replica2 = await createDatabase(
    { kind: "postgres", url: TEST_DATABASE_URL, schema: tdb.schema },
    { poolSize: 3 },
  );
  web = (await createTestClient(tdb.db.prisma, { id: "web" })).client;
});
afterAll(async () => {
  await replica2?.close();
  await tdb?.drop();
});
beforeEach(async () => {
  await q("DELETE FROM sessions");
});

const q = <T = Record<string, unknown>>(text: string, params: unknown[] = []) =>
  tdb.sql.query(text, params).then((r) => r.rows as T[]);
const count = async (sql: string, params: unknown[] = []) =>
  (await q<{ n: number }>(`SELECT count(*)::int AS n FROM ${sql}`, params))[0]!.n;

type DbUnderTest = SqlExecutor & SqlTransactions;
const onPool = (pool: pg.Pool): DbUnderTest => ({ ...poolExecutor(pool), ...poolTransactions(pool) });

interface Seed {
  /** Subjects are `<label>-<n>`, so a test can count what is left of each group. */
  label: string;
  n: number;
  /** Refresh-token rows per session. */
  tokens: number;
  expiresAt?: number;
  idleExpiresAt?: number;
  revokedAt?: number | null;
}

/** Sessions (and their refresh-token rows) in a given state, written as the flows would leave them. */
async function seed(s: Seed): Promise<void> {
  const far = clock.now() + 30 * DAY;
  await q(
    `WITH s AS (
       INSERT INTO sessions (subject, client_id, created_at, last_used_at, idle_expires_at, expires_at, revoked_at)
       SELECT $1 || '-' || g, 'web', $2::timestamptz, $2::timestamptz, $3::timestamptz, $4::timestamptz, $5::timestamptz
         FROM generate_series(1, $6::int) g
       RETURNING id
     )
     INSERT INTO refresh_tokens (token_hash, session_id, created_at, expires_at, used_at)
     SELECT sha256((s.id::text || '/' || t)::bytea), s.id, $2::timestamptz, $3::timestamptz,
            CASE WHEN t < $7::int THEN $2::timestamptz END
       FROM s, generate_series(1, $7::int) t`,
    [
      s.label,
      new Date(clock.now() - 100 * DAY),
      new Date(s.idleExpiresAt ?? far),
      new Date(s.expiresAt ?? far),
      s.revokedAt == null ? null : new Date(s.revokedAt),
      s.n,
      s.tokens,
    ],
  );
}

const left = (label: string) => count("sessions WHERE subject LIKE $1", [`${label}-%`]);
const tokensLeft = (label: string) =>
  count("refresh_tokens t JOIN sessions s ON s.id = t.session_id WHERE s.subject LIKE $1", [`${label}-%`]);

function janitor(
  db: DbUnderTest,
  opts: { batchSize?: number; metrics?: Registry; intervalMs?: number } = {},
): SessionJanitor {
  return createSessionJanitor({
    db,
    retentionMs: RETENTION,
    batchSize: opts.batchSize ?? 100,
    intervalMs: opts.intervalMs ?? 0,
    now: clock.now,
    log,
    metrics: opts.metrics,
  });
}

/** The pool's executor, recording what every batch statement reported. */
function recordingBatches(pool: pg.Pool, onBatch?: () => void) {
  const batches: { due_sessions: number; refresh_tokens: number; sessions: number }[] = [];
  const tx = poolTransactions(pool);
  const db: DbUnderTest = {
    ...poolExecutor(pool),
    transaction: (fn) =>
      tx.transaction((inner) =>
        fn({
          async query<Row>(statement: SqlStatement<Row>, params: readonly unknown[]) {
            const rows = await inner.query(statement, params);
            if (statement.name === pruneSessionsBatch.name) {
              batches.push(rows[0] as never);
              onBatch?.();
            }
            return rows;
          },
        }),
      ),
  };
  return { db, batches };
}

describe("what the janitor deletes", () => {
  it("deletes sessions expired or revoked longer than the retention ago, with their refresh tokens; keeps the rest", async () => {
    const t = clock.now();
    const past = t - RETENTION - MINUTE;
    const inside = t - RETENTION + MINUTE;
    await seed({ label: "absolute-past", n: 3, tokens: 4, expiresAt: past, idleExpiresAt: past + DAY });
    await seed({ label: "idle-past", n: 3, tokens: 2, idleExpiresAt: past });
    await seed({ label: "revoked-past", n: 2, tokens: 3, revokedAt: past });
    await seed({ label: "absolute-inside", n: 2, tokens: 2, expiresAt: inside, idleExpiresAt: inside });
    await seed({ label: "idle-inside", n: 2, tokens: 2, idleExpiresAt: inside });
    await seed({ label: "revoked-inside", n: 2, tokens: 2, revokedAt: inside });
    await seed({ label: "live", n: 4, tokens: 3 });

    const pass = await janitor(onPool(tdb.db.pool!)).runOnce();
    expect(pass).toMatchObject({
      locked: true,
      drained: true,
      deleted: { sessions: 8, refreshTokens: 3 * 4 + 3 * 2 + 2 * 3 },
    });
    expect(pass.cutoff.getTime()).toBe(t - RETENTION);
    for (const label of ["absolute-past", "idle-past", "revoked-past"]) expect(await left(label)).toBe(0);
    for (const label of ["absolute-inside", "idle-inside", "revoked-inside"]) {
      expect(await left(label)).toBe(2);
      expect(await tokensLeft(label)).toBe(4);
    }
    expect(await left("live")).toBe(4);
    expect(await tokensLeft("live")).toBe(12);
    // No orphan anywhere: every refresh-token row still has its session.
    expect(await count("refresh_tokens")).toBe(4 + 4 + 4 + 12);

    // Two minutes later on the service's clock, the ones that were a minute inside are due.
    clock.advance(2 * MINUTE);
    expect((await janitor(onPool(tdb.db.pool!)).runOnce()).deleted).toEqual({
      sessions: 6,
      refreshTokens: 12,
    });
    expect(await count("sessions")).toBe(4);
    expect(await count("refresh_tokens")).toBe(12);
  });

  it("works in bounded batches, a family with more tokens than a batch included, the cascade never fanning out", async () => {
    const past = clock.now() - RETENTION - DAY;
    await seed({ label: "many", n: 23, tokens: 3, expiresAt: past });
    await seed({ label: "long-family", n: 1, tokens: 26, revokedAt: past }); // rotated 25 times
    await seed({ label: "live", n: 6, tokens: 2 });
    const { db, batches } = recordingBatches(tdb.db.pool!);
    const pass = await janitor(db, { batchSize: 5 }).runOnce();
    // The counts come from each DELETE's RETURNING: rows a cascade removed would be missing from them.
    expect(pass.deleted).toEqual({ sessions: 24, refreshTokens: 23 * 3 + 26 });
    expect(pass.batches).toBe(batches.length);
    expect(batches.length).toBeGreaterThan((23 * 3 + 26) / 5);
    for (const b of batches) {
      expect(b.refresh_tokens).toBeLessThanOrEqual(5);
      expect(b.sessions).toBeLessThanOrEqual(5);
    }
    expect(batches.at(-1)).toMatchObject({ refresh_tokens: 0 });
    expect(batches.at(-1)!.due_sessions).toBeLessThan(5);
    expect(await count("sessions")).toBe(6);
    expect(await count("refresh_tokens")).toBe(12);
  });

  it("reports deletions by table, the backlog and the last pass as metrics", async () => {
    const past = clock.now() - RETENTION - DAY;
    await seed({ label: "due", n: 4, tokens: 2, revokedAt: past });
    const metrics = createMetricsRegistry("token", { defaultMetrics: false });
    // Another replica holds the lock: this pass deletes nothing and counts what waits.
    const holder = await replica2.pool!.connect();
    try {
      await holder.query("BEGIN");
      await holder.query(`SELECT pg_advisory_xact_lock(${lockKey()})`);
      expect(await janitor(onPool(tdb.db.pool!), { metrics }).runOnce()).toMatchObject({
        locked: false,
        drained: false,
      });
      expect(await value(metrics, "gatehouse_janitor_backlog")).toBe(4);
    } finally {
      await holder.query("COMMIT");
      holder.release();
    }
    await janitor(onPool(tdb.db.pool!), { metrics, batchSize: 3 }).runOnce();
    expect(await value(metrics, "gatehouse_janitor_deleted_total", { table: "sessions" })).toBe(4);
    expect(await value(metrics, "gatehouse_janitor_deleted_total", { table: "refresh_tokens" })).toBe(8);
    expect(await value(metrics, "gatehouse_janitor_backlog")).toBe(0);
    expect(await value(metrics, "gatehouse_janitor_last_pass_timestamp_seconds")).toBe(clock.now() / 1000);
  });
});

async function value(registry: Registry, name: string, labels: Record<string, string> = {}) {
  const metric = (await registry.getMetricsAsJSON()).find((m) => m.name === name);
  const entry = metric?.values.find((v) => Object.entries(labels).every(([k, l]) => v.labels[k] === l));
  return entry?.value;
}

describe("one replica at a time, behind a transaction pooler", () => {
  it("skips while another replica's batch holds the lock, and needs no unlock afterwards", async () => {
    await seed({ label: "due", n: 10, tokens: 1, expiresAt: clock.now() - RETENTION - DAY });
    const holder = await tdb.db.pool!.connect();
    try {
      await holder.query("BEGIN");
      await holder.query(`SELECT pg_advisory_xact_lock(${lockKey()})`);
      const pass = await janitor(onPool(replica2.pool!)).runOnce();
      expect(pass).toMatchObject({ locked: false, batches: 0, deleted: { sessions: 0, refreshTokens: 0 } });
      expect(await left("due")).toBe(10);
    } finally {
      // The holder's transaction ends; with it its lock, without any pg_advisory_unlock.
      await holder.query("COMMIT");
      holder.release();
    }
    expect((await janitor(onPool(replica2.pool!)).runOnce()).deleted.sessions).toBe(10);
  });

  it("two replicas on two pools at once: every due row deleted exactly once, counted once", async () => {
    const past = clock.now() - RETENTION - DAY;
    await seed({ label: "due", n: 150, tokens: 2, idleExpiresAt: past });
    await seed({ label: "live", n: 5, tokens: 2 });
    const a = recordingBatches(tdb.db.pool!);
    const b = recordingBatches(replica2.pool!);
    const [pa, pb] = await Promise.all([
      janitor(a.db, { batchSize: 7 }).runOnce(),
      janitor(b.db, { batchSize: 7 }).runOnce(),
    ]);
    expect(pa.deleted.sessions + pb.deleted.sessions).toBe(150);
    expect(pa.deleted.refreshTokens + pb.deleted.refreshTokens).toBe(300);
    // Whatever the interleaving, the one that got the lock last finished the backlog.
    expect(pa.drained || pb.drained).toBe(true);
    expect(await left("due")).toBe(0);
    expect(await left("live")).toBe(5);
  });

  it("leaves no advisory lock on its connection once a pass is over (a session lock would stay on the pooled connection)", async () => {
    await seed({ label: "due", n: 12, tokens: 2, revokedAt: clock.now() - RETENTION - DAY });
    // One connection, so every batch and the check after the pass run on the same backend, as a
    // transaction pooler's next client would find it.
    const pool = withSqlScope(new pg.Pool(servingPoolConfig(TEST_DATABASE_URL, { max: 1 })), {
      schema: tdb.schema,
      preparedStatements: true,
    });
    const observer = await tdb.db.pool!.connect();
    try {
      const heldBy = async (pid: number) =>
        (
          await observer.query(
            "SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND pid = $1 AND granted",
            [pid],
          )
        ).rows[0].n as number;
      let pid = 0;
      const seenDuringBatch: number[] = [];
      const tx = poolTransactions(pool);
      const db: DbUnderTest = {
        ...poolExecutor(pool),
        transaction: (fn) =>
          tx.transaction((inner) =>
            fn({
              async query<Row>(statement: SqlStatement<Row>, params: readonly unknown[]) {
                const rows = await inner.query(statement, params);
                if (statement.name === pruneSessionsBatch.name) {
                  pid = (await inner.query<{ pid: number }>(backendPid, []))[0]!.pid;
                  seenDuringBatch.push(await heldBy(pid));
                }
                return rows;
              },
            }),
          ),
      };
      const pass = await janitor(db, { batchSize: 5 }).runOnce();
      expect(pass.deleted.sessions).toBe(12);
      // The observer does see the lock while a batch runs: the check below can fail.
      expect(seenDuringBatch.length).toBe(pass.batches);
      expect(seenDuringBatch.every((n) => n === 1)).toBe(true);
      expect(await heldBy(pid)).toBe(0);
      const [mine] = (await pool.query("SELECT pg_backend_pid() AS pid")).rows;
      expect(mine.pid).toBe(pid);
    } finally {
      observer.release();
      await pool.end();
    }
  });
});

describe("failures and stopping", () => {
  const locksHere = async () =>
    (
      await q<{ n: number }>(
        `SELECT count(*)::int AS n FROM pg_locks
          WHERE locktype = 'advisory' AND classid = 1751673454 AND objid = 'sessions'::regclass::oid`,
      )
    )[0]!.n;

  it("a batch that fails rolls back whole, releases the lock, and the next pass carries on", async () => {
    await seed({ label: "due", n: 6, tokens: 2, revokedAt: clock.now() - RETENTION - DAY });
    const tx = poolTransactions(tdb.db.pool!);
    let failures = 1;
    const db: DbUnderTest = {
      ...poolExecutor(tdb.db.pool!),
      transaction: (fn) =>
        tx.transaction((inner) =>
          fn({
            async query<Row>(statement: SqlStatement<Row>, params: readonly unknown[]) {
              const rows = await inner.query(statement, params);
              // After the DELETE ran: only a rollback can undo it.
              if (statement.name === pruneSessionsBatch.name && failures-- > 0)
                throw new Error("connection lost");
              return rows;
            },
          }),
        ),
    };
    await expect(janitor(db).runOnce()).rejects.toThrow("connection lost");
    expect(await tokensLeft("due")).toBe(12);
    expect(await locksHere()).toBe(0);
    expect((await janitor(db).runOnce()).deleted).toEqual({ sessions: 6, refreshTokens: 12 });
  });

  it("stop() ends a pass after its current batch", async () => {
    await seed({ label: "due", n: 20, tokens: 1, expiresAt: clock.now() - RETENTION - DAY });
    // stop() is called from inside the first batch, not from a poll that a loaded machine may run
    // only after the whole pass (the test was flaky that way).
    let stopped: Promise<void> | undefined;
    const { db, batches } = recordingBatches(tdb.db.pool!, () => {
      stopped ??= j.stop();
    });
    const j = janitor(db, { batchSize: 5, intervalMs: 3_600_000 });
    j.start(); // the first pass starts at once
    await vi.waitFor(() => expect(stopped).toBeDefined());
    await stopped;
    expect(batches.length).toBeLessThan(4);
    expect(await left("due")).toBeGreaterThan(0);
    expect(await locksHere()).toBe(0);
  });
});

const backendPid: SqlStatement<{ pid: number }> = sql(
  "test_backend_pid",
  () => "SELECT pg_backend_pid() AS pid",
);

describe("retention keeps a just-expired family recognisable", () => {
  it("a rotated token of a family that expired inside the retention is still recognised as reuse and audited; past it, it is gone", async () => {
    const deps = await flowDeps(tdb.db.prisma, poolExecutor(tdb.db.pool!), clock.now);
    try {
      const caller = () => ({ client: web, requestId: "req" });
      const first = await issue(
        deps,
        caller(),
        create(IssueRequestSchema, { subject: "alice", audience: ["orders"], scopes: ["orders:read"] }),
      );
      const second = await refresh(
        deps,
        caller(),
        create(RefreshRequestSchema, { refreshToken: first.refreshToken }),
      );
      expect(second.refreshToken).not.toBe(first.refreshToken);
      const reuse = () =>
        refresh(deps, caller(), create(RefreshRequestSchema, { refreshToken: first.refreshToken }));

      // The session idles out (14 days), then most of the retention passes: the janitor keeps it.
      clock.advance(14 * DAY + RETENTION - MINUTE);
      expect((await janitor(onPool(tdb.db.pool!)).runOnce()).deleted.sessions).toBe(0);
      // Reuse of the expired family is still recognised, and audited (it was token_expired before).
      await expect(reuse()).rejects.toMatchObject({ code: "refresh_token_reused" });
      const audited = await q(
        "SELECT outcome FROM audit_events WHERE action = 'refresh_token.reuse' AND target_id = $1",
        [second.sessionId],
      );
      expect(audited).toEqual([{ outcome: "denied" }]);

      clock.advance(2 * MINUTE);
      // The family's refresh state was its session row: no refresh_tokens rows to delete.
      expect((await janitor(onPool(tdb.db.pool!)).runOnce()).deleted).toEqual({
        sessions: 1,
        refreshTokens: 0,
      });
      await expect(reuse()).rejects.toMatchObject({ code: "invalid_grant" });
    } finally {
      deps.stop();
    }
  });
});

describe("scheduling", () => {
  it("the token service runs the janitor on its settings and its clock", async () => {
    await seed({ label: "due", n: 5, tokens: 2, expiresAt: clock.now() - RETENTION - DAY });
    await seed({ label: "live", n: 2, tokens: 1 });
    // Made under another master key by an earlier test.
    await q("DELETE FROM signing_keys");
    await q("DELETE FROM refresh_keys");
    const config = loadSettings(tokenServiceSettings, {
      env: {
        DATABASE_URL: tdb.url,
        GATEHOUSE_ISSUER: "https://auth.test",
        GATEHOUSE_MASTER_KEY: randomBytes(32).toString("base64"),
        GATEHOUSE_LISTEN: "127.0.0.1:0",
        GATEHOUSE_HTTP_LISTEN: "127.0.0.1:0",
        GATEHOUSE_ADMIN_LISTEN: "127.0.0.1:0",
        GATEHOUSE_KEY_ROTATION: "off",
        GATEHOUSE_SHUTDOWN_GRACE: "1s",
        GATEHOUSE_AUDIT_RETENTION: "off",
        GATEHOUSE_JANITOR_INTERVAL: "1h",
        GATEHOUSE_REVOCATION: "none",
      },
    });
    const service = await startTokenService({
      settings: config,
      database: { kind: "postgres", url: tdb.url },
      logger: log,
      now: clock.now,
    });
    try {
      const deadline = Date.now() + 10_000;
      while ((await left("due")) !== 0) {
        if (Date.now() > deadline) throw new Error("the token service did not run the janitor at start-up");
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(await left("live")).toBe(2);
      expect(await value(service.metrics, "gatehouse_janitor_deleted_total", { table: "sessions" })).toBe(5);
    } finally {
      await service.shutdown();
    }
  });
});

describe("on embedded PGlite (gatehouse dev)", () => {
  it("deletes the same way through PGlite's own transactions", { timeout: 60_000 }, async () => {
    const pglite = new PGlite();
    try {
      await migrate({ kind: "pglite", db: pglite });
      const past = new Date(clock.now() - RETENTION - DAY);
      await pglite.query("INSERT INTO clients (id, name, secret_hash) VALUES ('web', 'web', 'x')");
      await pglite.query(
        `INSERT INTO sessions (subject, client_id, idle_expires_at, expires_at, revoked_at)
         VALUES ('due', 'web', $1, $1, NULL), ('revoked', 'web', $2, $2, $1), ('live', 'web', $2, $2, NULL)`,
        [past, new Date(clock.now() + DAY)],
      );
      await pglite.query(
        "INSERT INTO refresh_tokens (token_hash, session_id, expires_at) SELECT sha256(id::text::bytea), id, now() FROM sessions",
      );
      const pass = await janitor({ ...pgliteExecutor(pglite), ...pgliteTransactions(pglite) }).runOnce();
      expect(pass).toMatchObject({ locked: true, drained: true, deleted: { sessions: 2, refreshTokens: 2 } });
      expect((await pglite.query<{ subject: string }>("SELECT subject FROM sessions")).rows).toEqual([
        { subject: "live" },
      ]);
    } finally {
      await pglite.close();
    }
  });
});

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function gatehouse(args: string[], env: Record<string, string> = {}) {
  return new Promise<Run>((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      env: { PATH: process.env.PATH, HOME: process.env.HOME, DATABASE_URL: tdb.url, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => {
      stdout += d;
    });
    child.stderr.on("data", (d) => {
      stderr += d;
    });
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

describe("gatehouse janitor --once", () => {
  it("deletes what is due on the real clock and prints it; exit codes 0, 2 and 1", {
    timeout: 60_000,
  }, async () => {
    // The CLI reads the real clock: rows relative to it.
    clock.set(Date.now());
    await seed({ label: "due", n: 3, tokens: 2, expiresAt: Date.now() - RETENTION - DAY });
    await seed({ label: "live", n: 2, tokens: 1 });
    const [ok, noOnce, badRetention, badDb] = await Promise.all([
      gatehouse(["janitor", "--once", "--janitor-batch-size", "10"]),
      gatehouse(["janitor"]),
      gatehouse(["janitor", "--once", "--session-retention", "600"]),
      gatehouse(["janitor", "--once"], { DATABASE_URL: "postgres://postgres@127.0.0.1:1/test" }),
    ]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(
      /^deleted 3 session\(s\) and 6 refresh-token row\(s\) that expired or were revoked before \S+Z, in 2 batch\(es\)\n$/,
    );
    expect(await left("due")).toBe(0);
    expect(await left("live")).toBe(2);
    expect(noOnce.code).toBe(2);
    expect(noOnce.stderr).toContain("--once is required");
    expect(badRetention.code).toBe(2);
    expect(badRetention.stderr).toContain("--session-retention: must be at least 3600000 ms");
    expect(badDb.code).toBe(1);
    expect(badDb.stderr).toMatch(/^gatehouse janitor: /);
    expect(badDb.stderr).not.toMatch(/\n\s+at /);

    const again = await gatehouse(["janitor", "--once", "--json"]);
    expect(again.code, again.stderr).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({
      locked: true,
      drained: true,
      batches: 1,
      deleted: { sessions: 0, refreshTokens: 0 },
    });
  });
});
