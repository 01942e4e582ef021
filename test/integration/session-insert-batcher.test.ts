import { randomBytes, randomUUID } from "node:crypto";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDatabase, type Database } from "../../services/shared/database/index.ts";
import { createSessionInsertBatcher } from "../../services/token/store/session-insert-batcher.ts";
import { poolExecutor, type SqlExecutor } from "../../services/token/store/sql-executor.ts";
import type { NewSession } from "../../services/token/store/token-store.ts";
import { type TestDatabase, useTestDatabase } from "../support/database.ts";
import { TEST_DATABASE_URL } from "../support/services.ts";
import { createTestClient } from "../support/token-fixtures.ts";

/**
 * Issue's grouped insert on real Postgres: grouped sessions must be stored exactly as the one-row
 * statement stores them, a row Postgres refuses must fail only its caller, and a failure of the
 * statement itself must reach every caller of the group and write nothing.
 */

let tdb: TestDatabase;

/** The real executor, counting the statements it runs by name. */
function countingExecutor(inner: SqlExecutor) {
  const counts = new Map<string, number>();
  const executor: SqlExecutor = {
    query(statement, params) {
      counts.set(statement.name, (counts.get(statement.name) ?? 0) + 1);
      return inner.query(statement, params);
    },
  };
  return { executor, count: (name: string) => counts.get(name) ?? 0 };
}

let n = 0;
function session(overrides: Partial<NewSession> = {}): NewSession {
  n++;
  const now = new Date(Date.parse("2026-01-05T12:00:00.123Z") + n);
  return {
    sessionId: randomUUID(),
    subject: `user-${n}`,
    clientId: "issuer-a",
    tenant: n % 2 ? "acme" : null,
    scopes: n % 3 ? ["orders:read", "orders:write"] : [],
    audience: ["orders"],
    claims: n % 4 ? { plan: "pro", nested: { list: [1, "ü", null] }, emoji: "🚀" } : null,
    signingKid: "kid-1",
    now,
    idleExpiresAt: new Date(now.getTime() + 14 * 86_400_000),
    expiresAt: new Date(now.getTime() + 90 * 86_400_000),
    device:
      n % 5
        ? { userAgent: "curl/8 ✓", ipAddress: "10.0.0.1", name: "laptop" }
        : { userAgent: null, ipAddress: null, name: null },
    refreshTokenHash: randomBytes(32),
    refreshMacKid: "rk-mac-test",
    ...overrides,
  };
}

/** Everything stored for a session, with its own id and hash left out, so two sessions can be compared. */
async function stored(id: string) {
  const { rows } = await tdb.sql.query(
    `SELECT s.subject, s.client_id, s.tenant, s.scopes, s.audience, s.claims, s.version, s.signing_kid,
            s.created_at, s.last_used_at, s.idle_expires_at, s.expires_at, s.revoked_at,
            s.device_user_agent, s.device_ip_address, s.device_name,
            s.refresh_generation, s.refresh_mac_kid, s.refresh_hash AS token_hash
     FROM sessions s WHERE s.id = $1`,
    [id],
  );
  return rows;
}

const sessionCount = async (ids: string[]) =>
  Number(
    (await tdb.sql.query("SELECT count(*) FROM sessions WHERE id = ANY($1::uuid[])", [ids])).rows[0].count,
  );

beforeAll(async () => {
  tdb = await useTestDatabase();
  await createTestClient(tdb.db.prisma, { id: "issuer-a" });
});

afterAll(async () => {
  await tdb?.drop();
});

describe("session insert batcher", () => {
  it("groups concurrent inserts and stores each session exactly as the one-row statement does", async () => {
    const { executor, count } = countingExecutor(poolExecutor(tdb.db.pool!));
    const insert = createSessionInsertBatcher(executor, { maxBatch: 16, maxInFlight: 2 });
    const specs = Array.from({ length: 100 }, () => session());

    // Each spec once alone (nothing else queued: the one-row statement)...
    const alone = specs.map((s) => ({ ...s, sessionId: randomUUID(), refreshTokenHash: randomBytes(32) }));
    for (const s of alone) await insert(s);
    expect(count("gh_create_sessions")).toBe(0);
    // ...and once all at once.
    await Promise.all(specs.map((s) => insert(s)));
    expect(count("gh_create_sessions")).toBeGreaterThan(0);
    expect(count("gh_create_session")).toBeLessThan(100 + 100);

    for (let i = 0; i < specs.length; i++) {
      const [grouped] = await stored(specs[i]!.sessionId);
      const [single] = await stored(alone[i]!.sessionId);
      expect(grouped, `session ${i}`).toBeDefined();
      expect(grouped.token_hash).toEqual(specs[i]!.refreshTokenHash);
      expect({ ...grouped, token_hash: null }).toEqual({ ...single, token_hash: null });
    }
  });

  it("fails only the row Postgres refuses, with the error it gets alone, and stores the rest", async () => {
    const { executor, count } = countingExecutor(poolExecutor(tdb.db.pool!));
    const insert = createSessionInsertBatcher(executor, { maxBatch: 64, maxInFlight: 1 });
    const good = Array.from({ length: 20 }, () => session());
    const bad = session({ clientId: "no-such-client" });
    const aloneError = await insert(session({ clientId: "no-such-client" })).catch((e: unknown) => e);
    expect(aloneError).toMatchObject({ code: "23503" });

    // The first goes alone; the others queue behind it and go as one group, which Postgres refuses.
    const outcomes = await Promise.allSettled(
      [...good.slice(0, 10), bad, ...good.slice(10)].map((s) => insert(s)),
    );
    expect(count("gh_create_sessions")).toBe(1);
    const rejected = outcomes.filter((o) => o.status === "rejected");
    expect(rejected).toHaveLength(1);
    expect((rejected[0] as PromiseRejectedResult).reason).toMatchObject({
      code: "23503",
      constraint: (aloneError as { constraint: string }).constraint,
    });
    expect(await sessionCount(good.map((s) => s.sessionId))).toBe(20);
    expect(await sessionCount([bad.sessionId])).toBe(0);
  });

  describe("when the statement itself fails", () => {
    let slow: Database;
    let locker: pg.Client;
    beforeAll(async () => {
      // A pool whose statements give up after 300 ms, and a transaction that holds the table meanwhile.
      slow = await createDatabase(
        { kind: "postgres", url: TEST_DATABASE_URL, schema: tdb.schema },
        { poolSize: 2, pool: { statement_timeout: 300 } },
      );
      locker = new pg.Client({ connectionString: TEST_DATABASE_URL });
      await locker.connect();
    });
    afterAll(async () => {
      await locker?.end();
      await slow?.close();
    });

    it("rejects every caller of the group with that failure, retries none, and writes nothing", async () => {
      const { executor, count } = countingExecutor(poolExecutor(slow.pool!));
      const insert = createSessionInsertBatcher(executor, { maxBatch: 64, maxInFlight: 1 });
      const specs = Array.from({ length: 12 }, () => session());
      await locker.query("BEGIN");
      await locker.query(`LOCK TABLE "${tdb.schema}".sessions IN EXCLUSIVE MODE`);
      try {
        const outcomes = await Promise.allSettled(specs.map((s) => insert(s)));
        for (const o of outcomes) {
          expect(o.status).toBe("rejected");
          expect((o as PromiseRejectedResult).reason).toMatchObject({ code: "57014" }); // statement timeout
        }
        expect(count("gh_create_session")).toBe(1); // the first, alone; the group is not retried row by row
        expect(count("gh_create_sessions")).toBe(1);
      } finally {
        await locker.query("ROLLBACK");
      }
      expect(await sessionCount(specs.map((s) => s.sessionId))).toBe(0);
    });
  });
});
