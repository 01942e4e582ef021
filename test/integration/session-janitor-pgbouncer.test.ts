import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { withSqlScope } from "../../services/shared/database/sql-scope.ts";
import { createLogger } from "../../services/shared/logging/index.ts";
import { createSessionJanitor } from "../../services/token/janitor/session-janitor.ts";
import { poolExecutor, type SqlExecutor } from "../../services/token/store/sql-executor.ts";
import { poolTransactions, type SqlTransactions } from "../../services/token/store/sql-transaction.ts";
import { type TestDatabase, useTestDatabase } from "../support/database.ts";
import { type RunningPgbouncer, startPgbouncer } from "../support/pgbouncer.ts";
import { createTestClient, testClock } from "../support/token-fixtures.ts";

/**
 * The session janitor behind a real transaction pooler: PgBouncer (`pool_mode = transaction`) with two
 * server connections, and two replicas each on its own client pool through it. PgBouncer 1.18 (the
 * Debian one here) cannot keep named prepared statements in transaction mode, so these pools have
 * `preparedStatements: false` (what GATEHOUSE_DATABASE_PREPARED_STATEMENTS=false gives the service);
 * PgBouncer sets no search_path, so the statements find the schema by naming it.
 */
const DAY = 86_400_000;
const RETENTION = 7 * DAY;
const log = createLogger({ level: "silent", component: "test", pretty: false });
const clock = testClock();

let tdb: TestDatabase;
let pooler: RunningPgbouncer;
const pools: pg.Pool[] = [];
beforeAll(async () => {
  tdb = await useTestDatabase();
  await createTestClient(tdb.db.prisma, { id: "web" });
  pooler = await startPgbouncer(tdb.schema, 2, { searchPath: false });
  for (let i = 0; i < 2; i++) {
    pools.push(
      withSqlScope(new pg.Pool({ connectionString: pooler.url, max: 3 }), {
        schema: tdb.schema,
        preparedStatements: false,
      }),
    );
  }
});
afterAll(async () => {
  await Promise.all(pools.map((p) => p.end()));
  await pooler?.stop();
  await tdb?.drop();
});

function replica(pool: pg.Pool) {
  const db: SqlExecutor & SqlTransactions = { ...poolExecutor(pool), ...poolTransactions(pool) };
  return createSessionJanitor({
    db,
    retentionMs: RETENTION,
    batchSize: 9,
    intervalMs: 0,
    now: clock.now,
    log,
  });
}

const q = async (text: string, params: unknown[] = []) => (await tdb.sql.query(text, params)).rows;
/** Advisory locks on this schema's janitor key, on any backend. */
const janitorLocks = async () =>
  (
    await q(
      `SELECT count(*)::int AS n FROM pg_locks
        WHERE locktype = 'advisory' AND classid = 1751673454 AND objid = 'sessions'::regclass::oid`,
    )
  )[0].n as number;

describe("the session janitor behind PgBouncer in transaction mode", () => {
  it("two replicas delete every due row exactly once and leave no lock on a server connection", async () => {
    const past = new Date(clock.now() - RETENTION - DAY);
    await q(
      `WITH s AS (
         INSERT INTO sessions (subject, client_id, idle_expires_at, expires_at, revoked_at)
         SELECT 'u-' || g, 'web', $1::timestamptz + interval '30 days', $1::timestamptz + interval '30 days',
                CASE WHEN g <= 120 THEN $1::timestamptz END
           FROM generate_series(1, 130) g
         RETURNING id
       )
       INSERT INTO refresh_tokens (token_hash, session_id, expires_at)
       SELECT sha256((s.id::text || t)::bytea), s.id, $1::timestamptz FROM s, generate_series(1, 2) t`,
      [past],
    );
    const [a, b] = await Promise.all([replica(pools[0]!).runOnce(), replica(pools[1]!).runOnce()]);
    expect(a.deleted.sessions + b.deleted.sessions).toBe(120);
    expect(a.deleted.refreshTokens + b.deleted.refreshTokens).toBe(240);
    expect((await q("SELECT count(*)::int AS n FROM sessions"))[0].n).toBe(10);
    expect((await q("SELECT count(*)::int AS n FROM refresh_tokens"))[0].n).toBe(20);
    // The server connections stay open in the pooler, ready for the next client's transaction:
    // none of them may still hold the lock (a session-level lock would).
    expect(await janitorLocks()).toBe(0);
    // And the next pass, whichever server connection it lands on, gets the lock.
    expect(await replica(pools[1]!).runOnce()).toMatchObject({ locked: true, drained: true });
    expect(await replica(pools[0]!).runOnce()).toMatchObject({ locked: true, drained: true });
  });
});
