import { randomBytes } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import {
  IntrospectRequestSchema,
  IssueRequestSchema,
  RefreshRequestSchema,
  RevokeRequestSchema,
} from "../../services/gen/proto/gatehouse/v1/token_service_pb.ts";
import { servingPoolConfig } from "../../services/shared/database/postgres.ts";
import { withSqlScope } from "../../services/shared/database/sql-scope.ts";
import type { ClientRecord } from "../../services/token/clients/client-record.ts";
import type { FlowDeps } from "../../services/token/flows/flow-deps.ts";
import { introspect } from "../../services/token/flows/introspect-flow.ts";
import { issue } from "../../services/token/flows/issue-flow.ts";
import { refresh } from "../../services/token/flows/refresh-flow.ts";
import { revoke } from "../../services/token/flows/revoke-flow.ts";
import { poolExecutor } from "../../services/token/store/sql-executor.ts";
import { createSqlTokenStore } from "../../services/token/store/sql-token-store.ts";
import type { TokenStore } from "../../services/token/store/token-store.ts";
import {
  deriveNextRefreshToken,
  hashRefreshToken,
  parseRefreshToken,
  REFRESH_TOKEN_PREFIX,
} from "../../services/token/tokens/refresh-token-format.ts";
import { type TestDatabase, useTestDatabase } from "../support/database.ts";
import { createLegacySession } from "../support/legacy-refresh-tokens.ts";
import { createTestClient, flowDeps, testClock } from "../support/token-fixtures.ts";

/**
 * Issue 15, "Bounded refresh state": a session's refresh state is its one row, whatever the number of
 * rotations, and every property of the token-per-row design holds — reuse of any earlier token is
 * detected, a made-up token naming a real session changes nothing, legacy tokens keep working until
 * their next rotation, and a Refresh writes one row.
 */

let tdb: TestDatabase;
let deps: Awaited<ReturnType<typeof flowDeps>>;
const clock = testClock();
let web: ClientRecord;
let ops: ClientRecord;
let seq = 0;
const as = (client: ClientRecord) => ({ client, requestId: `req-${++seq}` });

beforeAll(async () => {
  // One connection: the flows' statements and the statistics probe share a backend (see rowsWritten).
  tdb = await useTestDatabase(undefined, { poolSize: 1 });
  deps = await flowDeps(tdb.db.prisma, poolExecutor(tdb.db.pool!), clock.now);
  web = (await createTestClient(tdb.db.prisma, { id: "web" })).client;
  ops = (await createTestClient(tdb.db.prisma, { id: "ops", roles: ["revoker", "introspector"] })).client;
});
afterAll(async () => {
  deps?.stop();
  await tdb?.drop();
});

const login = (subject = `user-${++seq}`) =>
  issue(
    deps,
    as(web),
    create(IssueRequestSchema, { subject, audience: ["orders"], scopes: ["orders:read"] }),
  );
const refreshWith = (d: FlowDeps, token: string) =>
  refresh(d, as(web), create(RefreshRequestSchema, { refreshToken: token }));
const doRefresh = (token: string) => refreshWith(deps, token);
const revokeByToken = (token: string) =>
  revoke(deps, as(web), create(RevokeRequestSchema, { target: { case: "refreshToken", value: token } }));

/** Everything the session row holds, to compare before and after an attempt that must change nothing. */
async function sessionRow(id: string) {
  const { rows } = await tdb.sql.query("SELECT * FROM sessions WHERE id = $1", [id]);
  return rows[0];
}

/** Flow deps whose store records every call: a refusal before any database access makes none. */
function countingDeps(): { deps: FlowDeps; calls: string[] } {
  const calls: string[] = [];
  const store = new Proxy(deps.store, {
    get(target, name: string) {
      const method = target[name as keyof TokenStore] as (...args: unknown[]) => unknown;
      return (...args: unknown[]) => {
        calls.push(name);
        return method.apply(target, args);
      };
    },
  });
  return { deps: { ...deps, store }, calls };
}

/** A v2 token for `sessionId` at `generation` with a random part nobody was given, under `key`. */
function madeUp(sessionId: string, generation: number, key: { kid: string; key: Uint8Array }): string {
  // Deriving from a random "previous token" yields a well-formed token of the wanted generation.
  const seed = REFRESH_TOKEN_PREFIX + randomBytes(32).toString("base64url");
  return deriveNextRefreshToken(seed, { sessionId, generation: generation - 1 }, randomBytes(32), key);
}

const NOT_VALID = { code: "invalid_grant", message: "refresh token is not valid" };

describe("reuse of any earlier token of the family", () => {
  it("rotate five times, then present the first token: refresh_token_reused, session revoked, event queued and published, audited", async () => {
    const first = await login();
    const tokens = [first.refreshToken!];
    for (let i = 0; i < 5; i++) {
      clock.advance(1000);
      tokens.push((await doRefresh(tokens.at(-1)!)).refreshToken!);
    }
    expect(new Set(tokens).size).toBe(6);
    expect((await sessionRow(first.sessionId!)).refresh_generation).toBe(6);
    expect(await tdb.db.prisma.refreshToken.count({ where: { sessionId: first.sessionId! } })).toBe(0);

    await expect(doRefresh(tokens[0]!)).rejects.toMatchObject({ code: "refresh_token_reused" });
    const session = await sessionRow(first.sessionId!);
    expect(session.revoked_at).not.toBeNull();
    expect(session.revoke_reason).toBe("refresh_token_reused");
    const events = await tdb.sql.query(
      "SELECT event_id::text FROM revocation_outbox WHERE type = 'session_revoked' AND payload->>'sid' = $1",
      [first.sessionId],
    );
    expect(events.rows).toHaveLength(1);
    expect(deps.published.at(-1)).toEqual([events.rows[0].event_id]);
    const audit = await tdb.sql.query(
      "SELECT outcome FROM audit_events WHERE action = 'refresh_token.reuse' AND target_id = $1",
      [first.sessionId],
    );
    expect(audit.rows).toEqual([{ outcome: "denied" }]);
    // The live token dies with the family.
    await expect(doRefresh(tokens[5]!)).rejects.toMatchObject({ code: "session_revoked" });
  });

  it.each([1, 2, 3, 4])(
    "presenting generation %i of 6 (after the grace window) is reuse too",
    async (generation) => {
      const first = await login();
      const tokens = [first.refreshToken!];
      for (let i = 0; i < 5; i++) tokens.push((await doRefresh(tokens.at(-1)!)).refreshToken!);
      clock.advance(11_000);
      await expect(doRefresh(tokens[generation - 1]!)).rejects.toMatchObject({
        code: "refresh_token_reused",
      });
      expect((await sessionRow(first.sessionId!)).revoked_at).not.toBeNull();
    },
  );

  it("the previous token inside the grace window replays the live token: same successor, no fork, nothing written", async () => {
    const first = await login();
    const second = await doRefresh(first.refreshToken!);
    const before = await sessionRow(first.sessionId!);
    clock.advance(2000);
    const replay = await doRefresh(first.refreshToken!);
    expect(replay.refreshToken).toBe(second.refreshToken);
    expect(await sessionRow(first.sessionId!)).toEqual(before);
    await expect(doRefresh(second.refreshToken!)).resolves.toMatchObject({ sessionId: first.sessionId });
  });
});

describe("a made-up token naming a real session", () => {
  it("with a wrong MAC: refused like an unknown token before any database access; the session is untouched", async () => {
    const victim = await login();
    const live = parseRefreshToken(victim.refreshToken!);
    if (!("version" in live) || live.version !== 2) throw new Error("Issue minted no v2 token");
    const before = await sessionRow(victim.sessionId!);
    const wrongKey = { kid: live.kid, key: randomBytes(32) };
    const unknownKid = { kid: "rk-mac-0000000000000000", key: randomBytes(32) };
    for (const forged of [
      madeUp(victim.sessionId!, 1, wrongKey), // the live generation
      madeUp(victim.sessionId!, 7, wrongKey), // ahead
      madeUp(victim.sessionId!, 1, unknownKid),
    ]) {
      const counted = countingDeps();
      await expect(refreshWith(counted.deps, forged)).rejects.toMatchObject(NOT_VALID);
      expect(counted.calls).toEqual([]);
      expect(await revokeByToken(forged)).toMatchObject({ sessionsRevoked: 0, eventIds: [] });
      expect(await introspect(deps, as(ops), create(IntrospectRequestSchema, { token: forged }))).toEqual({
        active: false,
      });
    }
    // Same answer as a token nobody ever issued.
    await expect(doRefresh(REFRESH_TOKEN_PREFIX + "a".repeat(43))).rejects.toMatchObject(NOT_VALID);
    expect(await sessionRow(victim.sessionId!)).toEqual(before);
    await expect(doRefresh(victim.refreshToken!)).resolves.toMatchObject({ sessionId: victim.sessionId });
  });

  it("with a valid MAC (a leaked MAC key) but a random part the session never had: refused, the session is untouched", async () => {
    const victim = await login();
    const second = await doRefresh(victim.refreshToken!);
    const third = await doRefresh(second.refreshToken!);
    const leaked = deps.macKeys.active();
    const before = await sessionRow(victim.sessionId!);
    // Live generation (3) and the previous one (2, which the grace window would replay): both keep a
    // hash, so a wrong random part is caught.
    for (const generation of [3, 2]) {
      const forged = madeUp(victim.sessionId!, generation, leaked);
      await expect(doRefresh(forged)).rejects.toMatchObject(NOT_VALID);
      clock.advance(11_000);
      await expect(doRefresh(forged)).rejects.toMatchObject(NOT_VALID);
      expect(await revokeByToken(forged)).toMatchObject({ sessionsRevoked: 0 });
    }
    expect(await sessionRow(victim.sessionId!)).toEqual(before);
    await expect(doRefresh(third.refreshToken!)).resolves.toMatchObject({ sessionId: victim.sessionId });
  });

  it("a genuine token of the family still revokes it by Revoke", async () => {
    const a = await login();
    const b = await doRefresh(a.refreshToken!);
    // The previous token (hash kept) and the live one.
    expect(await revokeByToken(a.refreshToken!)).toMatchObject({ sessionsRevoked: 1 });
    const c = await login();
    expect(await revokeByToken(c.refreshToken!)).toMatchObject({ sessionsRevoked: 1 });
    await expect(doRefresh(b.refreshToken!)).rejects.toMatchObject({ code: "session_revoked" });
  });
});

describe("tokens minted before the upgrade (v1, a refresh_tokens row each)", () => {
  const legacyLogin = (subject: string) =>
    createLegacySession(tdb.sql, {
      clientId: "web",
      subject,
      audience: ["orders"],
      scopes: ["orders:read"],
      now: clock.now(),
      signingKid: deps.keys.active().kid,
    });

  it("work until their next rotation, which moves the session to the one-row state", async () => {
    const legacy = await legacyLogin("legacy-user");
    expect(parseRefreshToken(legacy.refreshToken)).toEqual({ version: 1 });
    expect(
      await introspect(deps, as(ops), create(IntrospectRequestSchema, { token: legacy.refreshToken })),
    ).toMatchObject({ active: true, sessionId: legacy.sessionId });
    clock.advance(1000);
    const next = await doRefresh(legacy.refreshToken);
    expect(next.sessionId).toBe(legacy.sessionId);
    expect(parseRefreshToken(next.refreshToken!)).toMatchObject({
      version: 2,
      sessionId: legacy.sessionId,
      generation: 1,
    });
    const row = await sessionRow(legacy.sessionId);
    expect(row).toMatchObject({ refresh_generation: 1 });
    expect(row.refresh_hash).toEqual(hashRefreshToken(next.refreshToken!));
    expect(row.refresh_previous_hash).toEqual(hashRefreshToken(legacy.refreshToken));
    // The legacy row is marked used; no row was added.
    const legacyRows = await tdb.sql.query(
      "SELECT used_at IS NOT NULL AS used FROM refresh_tokens WHERE session_id = $1",
      [legacy.sessionId],
    );
    expect(legacyRows.rows).toEqual([{ used: true }]);

    // A duplicate inside the grace window gets the same (v2) successor.
    clock.advance(2000);
    expect((await doRefresh(legacy.refreshToken)).refreshToken).toBe(next.refreshToken);
    // The family goes on in v2; the legacy token is now an earlier generation: reuse.
    const after = await doRefresh(next.refreshToken!);
    expect(parseRefreshToken(after.refreshToken!)).toMatchObject({ version: 2, generation: 2 });
    await expect(doRefresh(legacy.refreshToken)).rejects.toMatchObject({ code: "refresh_token_reused" });
    expect((await sessionRow(legacy.sessionId)).revoked_at).not.toBeNull();
  });

  it("20 concurrent refreshes of one legacy token: one rotation, one successor for all", async () => {
    // A pool of its own: the file's single connection would queue the calls instead of racing them.
    const pool = withSqlScope(new pg.Pool(servingPoolConfig(tdb.url, { max: 8 })), {
      schema: tdb.schema,
      preparedStatements: true,
    });
    try {
      const racing = { ...deps, store: createSqlTokenStore(poolExecutor(pool)) };
      const legacy = await legacyLogin("legacy-race");
      const answers = await Promise.all(
        Array.from({ length: 20 }, () => refreshWith(racing, legacy.refreshToken)),
      );
      expect(new Set(answers.map((a) => a.refreshToken)).size).toBe(1);
      const row = await sessionRow(legacy.sessionId);
      expect(row.refresh_generation).toBe(1);
      expect(row.refresh_hash).toEqual(hashRefreshToken(answers[0]!.refreshToken!));
      expect(await tdb.db.prisma.refreshToken.count({ where: { sessionId: legacy.sessionId } })).toBe(1);
    } finally {
      await pool.end();
    }
  });

  it("replayed after the grace window is reuse, and revokes the session", async () => {
    const legacy = await legacyLogin("legacy-late");
    const next = await doRefresh(legacy.refreshToken);
    clock.advance(11_000);
    await expect(doRefresh(legacy.refreshToken)).rejects.toMatchObject({ code: "refresh_token_reused" });
    await expect(doRefresh(next.refreshToken!)).rejects.toMatchObject({ code: "session_revoked" });
  });

  it("still revoke their session by Revoke", async () => {
    const legacy = await legacyLogin("legacy-revoke");
    expect(await revokeByToken(legacy.refreshToken)).toMatchObject({ sessionsRevoked: 1 });
    await expect(doRefresh(legacy.refreshToken)).rejects.toMatchObject({ code: "session_revoked" });
  });
});

describe("rows written", () => {
  /**
   * Rows inserted and updated in this schema's tables, from pg_stat_user_tables. A backend publishes
   * its counts when idle, at most once a second unless asked: the probe asks both single-connection
   * pools to flush, then waits for the figures to include everything.
   */
  async function tableWrites() {
    // The service's connection and the test's own (legacy sessions are inserted through it).
    await Promise.all([tdb.db.pool!, tdb.sql].map((p) => p.query("SELECT pg_stat_force_next_flush()")));
    const { rows } = await tdb.sql.query(
      `SELECT relname, n_tup_ins::int AS ins, n_tup_upd::int AS upd, n_tup_hot_upd::int AS hot
         FROM pg_stat_user_tables WHERE schemaname = current_schema()`,
    );
    const sum = (k: "ins" | "upd" | "hot", only?: string) =>
      rows.filter((r) => !only || r.relname === only).reduce((n, r) => n + r[k], 0);
    return { ins: sum("ins"), upd: sum("upd"), sessionsHot: sum("hot", "sessions") };
  }
  async function settled(expected: (w: Awaited<ReturnType<typeof tableWrites>>) => void) {
    await vi.waitFor(async () => expected(await tableWrites()), { timeout: 20_000, interval: 250 });
    // And nothing more arrives after.
    await new Promise((r) => setTimeout(r, 1200));
    const w = await tableWrites();
    expected(w);
    return w;
  }

  it("Issue inserts one row, Refresh updates one row (reported: HOT share)", async () => {
    const N = 20;
    const start = await tableWrites();
    const issued = [];
    for (let i = 0; i < N; i++) issued.push(await login(`rows-${i}`));
    const afterIssue = await settled((w) => {
      expect(w.ins - start.ins).toBe(N);
      expect(w.upd - start.upd).toBe(0);
    });
    let tokens = issued.map((s) => s.refreshToken!);
    for (let round = 0; round < 3; round++) {
      tokens = await Promise.all(tokens.map(async (t) => (await doRefresh(t)).refreshToken!));
    }
    const afterRefresh = await settled((w) => {
      expect(w.ins - afterIssue.ins).toBe(0);
      expect(w.upd - afterIssue.upd).toBe(3 * N);
    });
    console.log(
      `rows written per Refresh: ${(afterRefresh.upd - afterIssue.upd + afterRefresh.ins - afterIssue.ins) / (3 * N)}; ` +
        `HOT updates of sessions: ${afterRefresh.sessionsHot - afterIssue.sessionsHot} of ${3 * N}`,
    );
  });
});

it("a genuine token re-labelled with another session id fails its MAC", async () => {
  const a = await login();
  const b = await login();
  const body = Buffer.from(a.refreshToken!.slice(REFRESH_TOKEN_PREFIX.length), "base64url");
  Buffer.from(b.sessionId!.replaceAll("-", ""), "hex").copy(body, 1);
  const relabelled = REFRESH_TOKEN_PREFIX + body.toString("base64url");
  const counted = countingDeps();
  await expect(refreshWith(counted.deps, relabelled)).rejects.toMatchObject(NOT_VALID);
  expect(counted.calls).toEqual([]);
});
