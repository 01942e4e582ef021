import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDatabase, type Database } from "../../services/shared/database/index.ts";
import { createLogger } from "../../services/shared/logging/index.ts";
import { createRedisBus, type RevocationBus } from "../../services/shared/revocation/index.ts";
import { createOutboxRelay, type OutboxRelay, poolOutboxDb } from "../../services/token/revocation/index.ts";
import { type TestDatabase, useTestDatabase } from "../support/database.ts";
import { type RunningPgbouncer, startPgbouncer } from "../support/pgbouncer.ts";
import { type TestRedis, useTestRedis } from "../support/redis.ts";

/**
 * Regression: the outbox relay behind PgBouncer in transaction mode. The relay used to take a
 * session-level advisory lock and release it with a later autocommit statement; behind a transaction
 * pooler the two can run on different server connections, so the lock stayed on one of them and every
 * later pass that landed elsewhere found it taken: publication stalled and Revoke answered
 * propagated: false. Now each pass is one transaction under a transaction-scoped lock.
 *
 * Two relays (two replicas' pools, unnamed statements, no search_path) and a client that keeps the
 * pooler's two server connections changing hands; every publish must complete, in outbox order, and
 * no relay lock may be left on any backend.
 */
const log = createLogger({ level: "silent", component: "test", pretty: false });
const EVENTS = 60;
const RELAY_LOCK_CLASS = 1195922008;

let tdb: TestDatabase;
let tredis: TestRedis;
let pooler: RunningPgbouncer;
let stream: string;
const replicas: { db: Database; bus: RevocationBus; relay: OutboxRelay }[] = [];
let noise: pg.Pool;

beforeAll(async () => {
  tdb = await useTestDatabase();
  tredis = await useTestRedis("rv-pgbouncer");
  stream = `${tredis.prefix}revocations`;
  pooler = await startPgbouncer(tdb.schema, 2, { searchPath: false });
  for (let i = 0; i < 2; i++) {
    const db = await createDatabase(
      { kind: "postgres", url: `${pooler.url}?schema=${tdb.schema}` },
      { poolSize: 3, preparedStatements: false },
    );
    const bus = createRedisBus({ url: tredis.url });
    const relay = createOutboxRelay({
      db: poolOutboxDb(db.pool!),
      bus,
      stream,
      maxAccessTokenTtlMs: 3_600_000,
      publishTimeoutMs: 5_000,
      pollIntervalMs: 50,
      pruneIntervalMs: 0,
      logger: log,
    });
    relay.start();
    replicas.push({ db, bus, relay });
  }
  noise = new pg.Pool({ connectionString: pooler.url, max: 2 });
});

afterAll(async () => {
  for (const r of replicas) {
    await r.relay.stop();
    await r.bus.close();
    await r.db.close();
  }
  await noise?.end();
  await pooler?.stop();
  await tredis?.cleanup();
  await tdb?.drop();
});

const relayLocks = async () =>
  (
    await tdb.sql.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND classid = $1::int::oid",
      [RELAY_LOCK_CLASS],
    )
  ).rows[0]!.n;

describe("the outbox relay behind PgBouncer in transaction mode", () => {
  it("two replicas keep publishing every event, in outbox order, and strand no lock", async () => {
    let stirring = true;
    // Short transactions from another client, so each relay statement may land on either server connection.
    const stir = (async () => {
      while (stirring) await noise.query("SELECT pg_sleep(0.002)");
    })();
    const published: boolean[] = [];
    try {
      for (let i = 0; i < EVENTS; i += 2) {
        const { rows } = await tdb.sql.query<{ event_id: string }>(
          `INSERT INTO revocation_outbox (type, payload, occurred_at, relevant_until)
           SELECT 'token_revoked', jsonb_build_object('jti', 'pgb-' || g), now(), now() + interval '1 hour'
             FROM generate_series($1::int, $1::int + 1) g
           RETURNING event_id::text`,
          [i],
        );
        // Each replica publishes one of its "own" events at once, as two Revokes would.
        published.push(
          ...(await Promise.all(rows.map((r, k) => replicas[k % 2]!.relay.publish([r.event_id])))),
        );
      }
    } finally {
      stirring = false;
      await stir;
    }
    const entries = await tredis.redis.xrange(stream, "-", "+");
    const jtis = entries
      .map(([, fields]) => /pgb-(\d+)/.exec(JSON.stringify(fields))?.[1])
      .filter((n) => n !== undefined)
      .map(Number);
    const { rows: unpublished } = await tdb.sql.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM revocation_outbox WHERE published_at IS NULL",
    );
    // Stop both relays first: a lock held by a pass in flight is not a stranded one.
    for (const r of replicas) await r.relay.stop();

    expect(published.filter((p) => !p).length, "publishes that timed out (stalled relay)").toBe(0);
    expect(unpublished[0]!.n).toBe(0);
    expect(jtis, "every event once, in outbox order").toEqual(Array.from({ length: EVENTS }, (_, i) => i));
    expect(await relayLocks(), "relay advisory locks left on a server connection").toBe(0);
  });
});
