import { randomBytes } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  IssueRequestSchema,
  RefreshRequestSchema,
  RevokeRequestSchema,
} from "../../services/gen/proto/gatehouse/v1/token_service_pb.ts";
import { createDatabase, type Database } from "../../services/shared/database/index.ts";
import { createLogger } from "../../services/shared/logging/index.ts";
import { loadSettings } from "../../services/shared/settings/index.ts";
import { type AuditRetention, createAuditRetention } from "../../services/token/audit/audit-retention.ts";
import type { ClientRecord } from "../../services/token/clients/client-record.ts";
import type { Caller } from "../../services/token/flows/flow-deps.ts";
import { issue } from "../../services/token/flows/issue-flow.ts";
import { refresh } from "../../services/token/flows/refresh-flow.ts";
import { revoke } from "../../services/token/flows/revoke-flow.ts";
import { poolOutboxDb } from "../../services/token/revocation/index.ts";
import { poolExecutor } from "../../services/token/store/sql-executor.ts";
import { startTokenService } from "../../services/token/token-service.ts";
import { tokenServiceSettings } from "../../services/token/token-service-settings.ts";
import { type TestDatabase, useTestDatabase } from "../support/database.ts";
import { TEST_DATABASE_URL } from "../support/services.ts";
import { createTestClient, flowDeps, testClock } from "../support/token-fixtures.ts";

const DAY = 86_400_000;
const RETENTION = 400 * DAY;
const log = createLogger({ level: "silent", component: "test", pretty: false });
const clock = testClock();

let tdb: TestDatabase;
let replica2: Database;
beforeAll(async () => {
  tdb = await useTestDatabase();
  // A second replica's own pool on the same schema, as another token service process would have.
  replica2 = await createDatabase(
    { kind: "postgres", url: TEST_DATABASE_URL, schema: tdb.schema },
    { poolSize: 2 },
  );
});
afterAll(async () => {
  await replica2?.close();
  await tdb?.drop();
});

const q = <T = Record<string, unknown>>(text: string, params: unknown[] = []) =>
  tdb.sql.query(text, params).then((r) => r.rows as T[]);

/** Writes `n` audit rows `ageMs` before the clock, as any writer would (one INSERT, no update). */
async function seed(n: number, ageMs: number, action = "client.update"): Promise<void> {
  await q(
    `INSERT INTO audit_events (occurred_at, actor, action, target_type, target_id, outcome)
     SELECT $1::timestamptz - (g * interval '1 millisecond'), 'client:root', $2, 'client', 'c' || g, 'success'
       FROM generate_series(0, $3::int - 1) g`,
    [new Date(clock.now() - ageMs), action, n],
  );
}

function retention(db: Database, opts: { retentionMs?: number; batchSize?: number } = {}): AuditRetention {
  return createAuditRetention({
    db: poolOutboxDb(db.pool!),
    retentionMs: opts.retentionMs ?? RETENTION,
    batchSize: opts.batchSize ?? 7,
    now: clock.now,
    log,
  });
}

const count = async (where = "TRUE", params: unknown[] = []) =>
  (await q<{ n: number }>(`SELECT count(*)::int AS n FROM audit_events WHERE ${where}`, params))[0]!.n;

describe("audit retention", () => {
  it("deletes only events older than the retention, in batches, and records that it did", async () => {
    await q("DELETE FROM audit_events");
    await seed(30, RETENTION + DAY); // due
    await seed(5, RETENTION - 60_000); // a minute short of due
    const r = await retention(tdb.db, { batchSize: 7 }).runOnce();
    expect(r).toMatchObject({ locked: true, deleted: 30 });
    expect(r.cutoff?.getTime()).toBe(clock.now() - RETENTION);
    expect(await count("action = 'client.update'")).toBe(5);
    const [record] = await q<{ actor: string; action: string; details: Record<string, unknown> }>(
      "SELECT actor, action, details FROM audit_events WHERE action = 'audit.prune'",
    );
    expect(record).toEqual({
      actor: "system:audit-retention",
      action: "audit.prune",
      details: { deleted: 30, before: new Date(clock.now() - RETENTION).toISOString(), retention_days: 400 },
    });
    // Nothing more is due: no delete, no second record.
    expect(await retention(tdb.db).runOnce()).toMatchObject({ locked: true, deleted: 0 });
    expect(await count("action = 'audit.prune'")).toBe(1);
  });

  it("lets time carry events past the cut-off on the service's clock", async () => {
    await q("DELETE FROM audit_events");
    await seed(4, RETENTION - DAY);
    const pruner = retention(tdb.db);
    expect((await pruner.runOnce()).deleted).toBe(0);
    clock.advance(DAY + 1);
    expect((await pruner.runOnce()).deleted).toBe(4);
    expect(await count("action <> 'audit.prune'")).toBe(0);
  });

  it("keeps everything when retention is off", async () => {
    await q("DELETE FROM audit_events");
    await seed(3, 10 * 365 * DAY);
    const pruner = retention(tdb.db, { retentionMs: 0 });
    expect(await pruner.runOnce()).toEqual({ locked: false, deleted: 0, cutoff: null });
    pruner.start(); // no timer, no pass
    await pruner.stop();
    expect(await count()).toBe(3);
  });

  it("runs on one replica at a time: a held lock makes the others skip", async () => {
    await q("DELETE FROM audit_events");
    await seed(50, RETENTION + DAY);
    const holder = await tdb.db.pool!.connect();
    try {
      await holder.query(`SELECT pg_advisory_lock(${0x676872}, hashtext('${tdb.schema}'))`);
      expect(await retention(replica2).runOnce()).toMatchObject({ locked: false, deleted: 0 });
      expect(await count()).toBe(50);
    } finally {
      await holder.query(`SELECT pg_advisory_unlock(${0x676872}, hashtext('${tdb.schema}'))`);
      holder.release();
    }
    // Two replicas at once: every due row is deleted exactly once, and recorded once.
    const [a, b] = await Promise.all([
      retention(tdb.db, { batchSize: 5 }).runOnce(),
      retention(replica2, { batchSize: 5 }).runOnce(),
    ]);
    expect(a.deleted + b.deleted).toBe(50);
    expect(await count("action <> 'audit.prune'")).toBe(0);
    expect(await count("action = 'audit.prune'")).toBe(1);
  });

  it("is started by the token service, on its clock", async () => {
    await q("DELETE FROM audit_events");
    // Made under another master key by an earlier test.
    await q("DELETE FROM signing_keys");
    await q("DELETE FROM refresh_keys");
    await seed(6, RETENTION + DAY);
    await seed(2, DAY);
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
        GATEHOUSE_REVOCATION: "none",
      },
    });
    expect(config.auditRetention).toBe(RETENTION);
    const service = await startTokenService({
      settings: config,
      database: { kind: "postgres", url: tdb.url },
      logger: log,
      now: clock.now,
    });
    try {
      const deadline = Date.now() + 10_000;
      while ((await count("action = 'client.update'")) !== 2) {
        if (Date.now() > deadline) throw new Error("the token service did not prune at start-up");
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(await count("action = 'audit.prune'")).toBe(1);
    } finally {
      await service.shutdown();
    }
  });
});

describe("audit rows written by the token flows", () => {
  let web: ClientRecord;
  let ops: ClientRecord;
  let seq = 0;
  const as = (client: ClientRecord): Caller => ({ client, requestId: `req-${++seq}` });

  beforeAll(async () => {
    web = (await createTestClient(tdb.db.prisma, { id: "web", refreshGraceSeconds: 0 })).client;
    ops = (await createTestClient(tdb.db.prisma, { id: "ops", roles: ["revoker"] })).client;
  });

  it("name the caller client:<id> and the action <object>.<verb>, like AdminService does", async () => {
    // Made under another master key by an earlier test.
    await q("DELETE FROM signing_keys");
    await q("DELETE FROM refresh_keys");
    const deps = await flowDeps(tdb.db.prisma, poolExecutor(tdb.db.pool!), clock.now);
    try {
      await q("DELETE FROM audit_events");
      const login = (subject: string) =>
        issue(deps, as(web), create(IssueRequestSchema, { subject, audience: ["orders"] }));
      const a = await login("ann");
      const target = (t: object) => create(RevokeRequestSchema, t);
      await revoke(deps, as(web), target({ target: { case: "sessionId", value: a.sessionId } }));
      const b = await login("bob");
      await revoke(
        deps,
        as(web),
        target({ target: { case: "sessionId", value: b.sessionId }, accessOnly: true }),
      );
      await revoke(deps, as(web), target({ target: { case: "accessToken", value: b.accessToken } }));
      await revoke(deps, as(ops), target({ target: { case: "subject", value: "cyd" } }));
      const c = await login("dee");
      await refresh(deps, as(web), create(RefreshRequestSchema, { refreshToken: c.refreshToken }));
      const reuse = await refresh(
        deps,
        as(web),
        create(RefreshRequestSchema, { refreshToken: c.refreshToken }),
      ).then(
        () => "accepted",
        (err: { code?: string }) => err.code,
      );
      expect(reuse).toBe("refresh_token_reused");

      const rows = await q<{ actor: string; action: string; outcome: string }>(
        "SELECT actor, action, outcome FROM audit_events ORDER BY id",
      );
      expect(rows).toEqual([
        { actor: "client:web", action: "session.revoke", outcome: "success" },
        { actor: "client:web", action: "session.revoke_access", outcome: "success" },
        // Revoking an access token also revokes its session.
        { actor: "client:web", action: "access_token.revoke", outcome: "success" },
        { actor: "client:web", action: "session.revoke", outcome: "success" },
        { actor: "client:ops", action: "subject.revoke", outcome: "success" },
        { actor: "client:web", action: "refresh_token.reuse", outcome: "denied" },
      ]);
    } finally {
      deps.stop();
    }
  });
});
