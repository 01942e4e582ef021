import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "../../services/shared/logging/index.ts";
import {
  createFailedLoginAudit,
  MAX_CLIENTS_PER_WINDOW,
} from "../../services/token/audit/failed-login-audit.ts";
import { poolExecutor } from "../../services/token/store/sql-executor.ts";
import { startTokenService } from "../../services/token/token-service.ts";
import { type TestDatabase, useTestDatabase } from "../support/database.ts";
import { type GrpcFailure, grpcTokenClient } from "../support/token-clients.ts";
import { createTestClient } from "../support/token-fixtures.ts";
import { testServiceSettings } from "../support/token-service-settings.ts";

/**
 * Issue 20: refused client logins are audited, one row per client id per window with a count, so a
 * flood of wrong secrets or made-up ids writes a handful of rows, not one per attempt.
 */
let tdb: TestDatabase;
const log = createLogger({ level: "silent", component: "test", pretty: false });

beforeAll(async () => {
  tdb = await useTestDatabase();
});
afterAll(async () => {
  await tdb?.drop();
});

async function loginRows() {
  const r = await tdb.sql.query(
    `SELECT actor, target_id, client_id, outcome, details FROM audit_events
      WHERE action = 'client.authenticate' ORDER BY target_id NULLS LAST`,
  );
  await tdb.sql.query("DELETE FROM audit_events WHERE action = 'client.authenticate'");
  return r.rows;
}

describe("failed client logins", () => {
  it("are audited by the token service as one row per client id and one for unknown ids, with counts", async () => {
    const app = await createTestClient(tdb.db.prisma, { id: "app", roles: ["issuer"] });
    await createTestClient(tdb.db.prisma, { id: "off", roles: ["issuer"], disabledAt: new Date() });
    const service = await startTokenService({
      settings: testServiceSettings(),
      database: { kind: "postgres", url: tdb.url },
      logger: log,
    });
    const attempt = async (id: string, secret: string) => {
      const c = grpcTokenClient(service.grpcPort, { id, secret });
      try {
        await c.issue({ subject: "u1", audience: ["orders"] });
        return "ok";
      } catch (err) {
        return (err as GrpcFailure).reason;
      } finally {
        c.close();
      }
    };
    try {
      const answers: (string | undefined)[] = [];
      for (let i = 0; i < 40; i++) answers.push(await attempt("app", `wrong-${i % 3}`));
      for (let i = 0; i < 30; i++) answers.push(await attempt(`made-up-${i}`, "x"));
      answers.push(await attempt("off", "whatever"));
      expect(new Set(answers)).toEqual(new Set(["invalid_client"]));
      // A right secret is not a failed login.
      expect(await attempt("app", app.secret)).toBe("ok");
    } finally {
      await service.shutdown(); // writes the open window
    }
    const rows = await loginRows();
    expect(rows).toHaveLength(3);
    expect(rows.map((r) => [r.actor, r.target_id, r.client_id, r.outcome, r.details.failures])).toEqual([
      ["system:authenticator", "app", "app", "denied", 40],
      ["system:authenticator", "off", "off", "denied", 1],
      ["system:authenticator", null, null, "denied", 30],
    ]);
    expect(rows[2].details.distinct_ids).toBe(30);
    expect(Date.parse(rows[0].details.last_at)).toBeGreaterThanOrEqual(Date.parse(rows[0].details.first_at));
    // Never the secrets that were tried.
    expect(JSON.stringify(rows)).not.toContain("wrong-");
  }, 60_000);

  it("write at most one row per client id per window, and nothing for a quiet window", async () => {
    const audit = createFailedLoginAudit({
      db: poolExecutor(tdb.db.pool!),
      isListed: (id) => id === "app",
      now: Date.now,
      log,
    });
    for (let i = 0; i < 500; i++) audit.refused("app");
    await audit.flush();
    await audit.flush();
    audit.refused("app");
    await audit.stop();
    const rows = await loginRows();
    expect(rows.map((r) => r.details.failures)).toEqual([500, 1]);
  });

  it("caps the rows of one window: ids past the cap are counted in the shared row", async () => {
    const audit = createFailedLoginAudit({
      db: poolExecutor(tdb.db.pool!),
      isListed: () => true,
      now: Date.now,
      log,
    });
    for (let i = 0; i < MAX_CLIENTS_PER_WINDOW + 20; i++) audit.refused(`c${i}`);
    await audit.stop();
    const rows = await loginRows();
    expect(rows).toHaveLength(MAX_CLIENTS_PER_WINDOW + 1);
    expect(rows.at(-1)).toMatchObject({ target_id: null, details: { failures: 20, distinct_ids: 20 } });
  });
});
