import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { createLocalJWKSet, decodeJwt, jwtVerify } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  IntrospectRequestSchema,
  IssueRequestSchema,
  ListSessionsRequestSchema,
  RefreshRequestSchema,
  RevokeRequestSchema,
} from "../../services/gen/proto/gatehouse/v1/token_service_pb.ts";
import type { ClientRecord } from "../../services/token/clients/client-record.ts";
import type { Caller } from "../../services/token/flows/flow-deps.ts";
import { introspect } from "../../services/token/flows/introspect-flow.ts";
import { issue } from "../../services/token/flows/issue-flow.ts";
import { listSessions } from "../../services/token/flows/list-sessions-flow.ts";
import { refresh } from "../../services/token/flows/refresh-flow.ts";
import { revoke } from "../../services/token/flows/revoke-flow.ts";
import { poolExecutor } from "../../services/token/store/sql-executor.ts";
import { hashRefreshToken } from "../../services/token/tokens/refresh-token-format.ts";
import { type TestDatabase, useTestDatabase } from "../support/database.ts";
import { createTestClient, flowDeps, testClock } from "../support/token-fixtures.ts";

let tdb: TestDatabase;
let deps: Awaited<ReturnType<typeof flowDeps>>;
const clock = testClock();
let web: ClientRecord;
let other: ClientRecord;
let revoker: ClientRecord;
let seq = 0;

const as = (client: ClientRecord): Caller => ({ client, requestId: `req-${++seq}` });

beforeAll(async () => {
  tdb = await useTestDatabase(undefined, { poolSize: 16 });
  deps = await flowDeps(tdb.db.prisma, poolExecutor(tdb.db.pool!), clock.now);
  web = (await createTestClient(tdb.db.prisma, { id: "web" })).client;
  other = (await createTestClient(tdb.db.prisma, { id: "other" })).client;
  revoker = (await createTestClient(tdb.db.prisma, { id: "ops", roles: ["revoker", "introspector"] })).client;
});
afterAll(async () => {
  deps?.stop();
  await tdb?.drop();
});

function login(
  subject = `user-${++seq}`,
  client = web,
  extra: MessageInitShape<typeof IssueRequestSchema> = {},
) {
  return issue(
    deps,
    as(client),
    create(IssueRequestSchema, { subject, audience: ["orders"], scopes: ["orders:read"], ...extra }),
  );
}
const doRefresh = (token: string, client = web, scopes: string[] = []) =>
  refresh(deps, as(client), create(RefreshRequestSchema, { refreshToken: token, scopes }));
const count = async (sql: string, ...params: unknown[]) =>
  Number((await tdb.sql.query(sql, params)).rows[0].n);
/** The family's live generation and token hash, as the session row holds them. */
async function liveRefreshState(sessionId: string) {
  const { rows } = await tdb.sql.query(
    "SELECT refresh_generation AS generation, refresh_hash AS live_hash FROM sessions WHERE id = $1",
    [sessionId],
  );
  return { generation: rows[0].generation, liveHash: rows[0].live_hash };
}

async function verified(token: string) {
  const { payload, protectedHeader } = await jwtVerify(
    token,
    createLocalJWKSet({ keys: deps.keys.jwks().keys as never }),
    {
      issuer: "https://auth.test",
      typ: "at+jwt",
      currentDate: new Date(clock.now()),
    },
  );
  return { payload, protectedHeader };
}

describe("Issue", () => {
  it("creates a session and a first refresh token, and signs an RFC 9068 access token", async () => {
    const r = await login("alice", web, {
      claims: { plan: "gold" },
      tenant: "acme",
      device: { userAgent: "curl/8", ipAddress: "203.0.113.7", name: "laptop" },
    });
    expect(r.refreshToken).toMatch(/^gthr_/);
    expect(r.tokenType).toBe("Bearer");
    const { payload, protectedHeader } = await verified(r.accessToken!);
    expect(protectedHeader).toMatchObject({ typ: "at+jwt", alg: "EdDSA" });
    expect(payload).toMatchObject({
      sub: "alice",
      aud: "orders",
      client_id: "web",
      scope: "orders:read",
      sid: r.sessionId,
      sv: 1,
      tenant: "acme",
      plan: "gold",
    });
    expect(payload.exp! - payload.iat!).toBe(600);
    const stored = await tdb.db.prisma.session.findUniqueOrThrow({ where: { id: r.sessionId! } });
    expect(stored).toMatchObject({
      subject: "alice",
      clientId: "web",
      deviceIpAddress: "203.0.113.7",
      version: 1,
    });
    // The session row is the family's only refresh state: generation 1 and the token's hash.
    expect(await tdb.db.prisma.refreshToken.count({ where: { sessionId: r.sessionId! } })).toBe(0);
    expect(stored.refreshGeneration).toBe(1);
    expect(Buffer.from(stored.refreshHash!)).toEqual(hashRefreshToken(r.refreshToken!));
  });

  it.each([
    ["empty subject", { subject: "" }, "invalid_request"],
    ["subject over 256 characters", { subject: "x".repeat(257) }, "invalid_request"],
    ["invalid UTF-8 in subject", { subject: "bad\ufffdutf8" }, "invalid_request"],
    ["audience not allowed", { audience: ["elsewhere"] }, "audience_not_allowed"],
    ["scope not allowed", { scopes: ["admin"] }, "scope_not_allowed"],
    ["65 scopes", { scopes: Array.from({ length: 65 }, (_, i) => `s${i}`) }, "invalid_request"],
    ["reserved claim", { claims: { sub: "root" } }, "claim_not_allowed"],
    ["claim not allowed", { claims: { role: "admin" } }, "claim_not_allowed"],
    ["claims over 4 KiB", { claims: { plan: "x".repeat(5000) } }, "invalid_request"],
    ["bad IP address", { device: { ipAddress: "not an ip" } }, "invalid_request"],
    ["five-part IPv4 address", { device: { ipAddress: "1.2.3.4.5" } }, "invalid_request"],
    ["IPv4 octet over 255", { device: { ipAddress: "203.0.113.256" } }, "invalid_request"],
    ["colons only", { device: { ipAddress: "::::" } }, "invalid_request"],
    ["dots only", { device: { ipAddress: "...." } }, "invalid_request"],
    ["IPv6 with a zone id", { device: { ipAddress: "fe80::1%eth0" } }, "invalid_request"],
  ])("refuses %s with %s and writes nothing", async (_label, overrides, code) => {
    const before = await count("SELECT count(*) AS n FROM sessions");
    await expect(login("bob", web, overrides as never)).rejects.toMatchObject({ code });
    expect(await count("SELECT count(*) AS n FROM sessions")).toBe(before);
  });

  it.each(["203.0.113.7", "2001:db8::1", "::ffff:192.0.2.1", "::1"])(
    "keeps the device address %s",
    async (ipAddress) => {
      const r = await login(`ip-${++seq}`, web, { device: { ipAddress } });
      const stored = await tdb.db.prisma.session.findUniqueOrThrow({ where: { id: r.sessionId! } });
      expect(stored.deviceIpAddress).toBe(ipAddress);
    },
  );

  it("writes no session when the access token cannot be signed", async () => {
    // A signing failure (a key that stopped working) must fail the call with nothing stored: the
    // row of a session whose tokens were never handed out would be live state no client holds.
    const active = deps.keys.active();
    const broken = {
      ...active,
      sign: () => {
        throw new Error("signing key unusable");
      },
    };
    const failing = { ...deps, keys: { ...deps.keys, active: () => broken } };
    const subject = `unsigned-${++seq}`;
    const before = await count("SELECT count(*) AS n FROM sessions");
    await expect(
      issue(failing, as(web), create(IssueRequestSchema, { subject, audience: ["orders"] })),
    ).rejects.toThrow("signing key unusable");
    // Settled writes only: wait out the group commit's statements still in flight, if any.
    await new Promise((r) => setTimeout(r, 200));
    expect(await count("SELECT count(*) AS n FROM sessions WHERE subject = $1", subject)).toBe(0);
    expect(await count("SELECT count(*) AS n FROM sessions")).toBe(before);
  });
});

describe("Refresh", () => {
  it("rotates: a new refresh token, the old one marked used, one live token in the family", async () => {
    const first = await login();
    clock.advance(1000);
    const second = await doRefresh(first.refreshToken!);
    expect(second.refreshToken).not.toBe(first.refreshToken);
    expect(second.sessionId).toBe(first.sessionId);
    expect((await verified(second.accessToken!)).payload).toMatchObject({ sid: first.sessionId, sv: 1 });
    expect(await liveRefreshState(first.sessionId!)).toEqual({
      generation: 2,
      liveHash: hashRefreshToken(second.refreshToken!),
    });
    const third = await doRefresh(second.refreshToken!);
    expect(third.refreshToken).not.toBe(second.refreshToken);
  });

  it("answers 50 parallel refreshes of one token with one identical successor and no fork", async () => {
    const first = await login();
    const results = await Promise.allSettled(
      Array.from({ length: 50 }, () => doRefresh(first.refreshToken!)),
    );
    const rejected = results.filter((r) => r.status === "rejected");
    expect(rejected).toEqual([]);
    const successors = new Set(
      results.map((r) => (r as PromiseFulfilledResult<{ refreshToken?: string }>).value.refreshToken),
    );
    expect(successors.size).toBe(1);
    // One rotation, and the one successor is the family's live token.
    expect(await liveRefreshState(first.sessionId!)).toEqual({
      generation: 2,
      liveHash: hashRefreshToken([...successors][0]!),
    });
    // The family goes on from the one successor.
    await expect(doRefresh([...successors][0]!)).resolves.toMatchObject({ sessionId: first.sessionId });
  });

  it("treats a repeat after the grace window as reuse: revokes the family, queues an event, audits it", async () => {
    const first = await login();
    const second = await doRefresh(first.refreshToken!);
    clock.advance(10_001);
    await expect(doRefresh(first.refreshToken!)).rejects.toMatchObject({ code: "refresh_token_reused" });
    await expect(doRefresh(second.refreshToken!)).rejects.toMatchObject({ code: "session_revoked" });
    expect(
      await count(
        "SELECT count(*) AS n FROM revocation_outbox WHERE payload->>'sid' = $1 AND type = 'session_revoked'",
        first.sessionId,
      ),
    ).toBe(1);
    expect(
      await count(
        "SELECT count(*) AS n FROM audit_events WHERE target_id = $1 AND action = 'refresh_token.reuse'",
        first.sessionId,
      ),
    ).toBe(1);
    const audit = await tdb.db.prisma.auditEvent.findFirstOrThrow({ where: { targetId: first.sessionId! } });
    expect(JSON.stringify(audit, (_k, v) => (typeof v === "bigint" ? String(v) : v))).not.toContain(
      first.refreshToken!,
    );
  });

  it("treats a repeat inside the window as reuse once the successor has been used", async () => {
    const first = await login();
    const second = await doRefresh(first.refreshToken!);
    await doRefresh(second.refreshToken!);
    await expect(doRefresh(first.refreshToken!)).rejects.toMatchObject({ code: "refresh_token_reused" });
  });

  it("replays nothing when the client's grace window is 0", async () => {
    const strict = (await createTestClient(tdb.db.prisma, { id: "strict", refreshGraceSeconds: 0 })).client;
    const first = await login(undefined, strict);
    await doRefresh(first.refreshToken!, strict);
    await expect(doRefresh(first.refreshToken!, strict)).rejects.toMatchObject({
      code: "refresh_token_reused",
    });
  });

  it("never mints a usable token after a concurrent revoke of the session committed", async () => {
    for (let round = 0; round < 10; round++) {
      const first = await login();
      const [r, v] = await Promise.allSettled([
        doRefresh(first.refreshToken!),
        revoke(
          deps,
          as(web),
          create(RevokeRequestSchema, { target: { case: "sessionId", value: first.sessionId! } }),
        ),
      ]);
      expect(v.status).toBe("fulfilled");
      const session = await tdb.db.prisma.session.findUniqueOrThrow({ where: { id: first.sessionId! } });
      expect(session.revokedAt).not.toBeNull();
      if (r.status === "fulfilled") {
        // It won the race: its successor is already dead with the session.
        await expect(doRefresh(r.value.refreshToken!)).rejects.toMatchObject({ code: "session_revoked" });
      } else {
        expect(r.reason).toMatchObject({ code: "session_revoked" });
      }
    }
  });

  it("expires after the idle timeout and after the absolute lifetime", async () => {
    const idle = (
      await createTestClient(tdb.db.prisma, {
        id: "idle",
        refreshIdleTtlSeconds: 60,
        refreshAbsoluteTtlSeconds: 150,
      })
    ).client;
    const a = await login(undefined, idle);
    clock.advance(60_000);
    await expect(doRefresh(a.refreshToken!, idle)).rejects.toMatchObject({ code: "token_expired" });
    const b = await login(undefined, idle);
    clock.advance(50_000);
    const b2 = await doRefresh(b.refreshToken!, idle);
    clock.advance(50_000);
    const b3 = await doRefresh(b2.refreshToken!, idle);
    clock.advance(50_000);
    await expect(doRefresh(b3.refreshToken!, idle)).rejects.toMatchObject({ code: "token_expired" });
  });

  it("binds a refresh token to its client and only narrows scopes", async () => {
    const a = await login(undefined, web, { scopes: ["orders:read", "orders:write"] });
    await expect(doRefresh(a.refreshToken!, other)).rejects.toMatchObject({ code: "invalid_grant" });
    await expect(doRefresh(a.refreshToken!, web, ["billing:read"])).rejects.toMatchObject({
      code: "scope_not_allowed",
    });
    const narrowed = await doRefresh(a.refreshToken!, web, ["orders:read"]);
    expect(narrowed.scopes).toEqual(["orders:read"]);
    expect(decodeJwt(narrowed.accessToken!).scope).toBe("orders:read");
    const wide = await doRefresh(narrowed.refreshToken!);
    expect(wide.scopes).toEqual(["orders:read", "orders:write"]);
  });

  it.each([
    ["", "invalid_request"],
    ["gthr_short", "invalid_request"],
    ["ghr_" + "a".repeat(43), "invalid_request"],
    ["gthr_" + "a".repeat(42) + "!", "invalid_request"],
    ["x".repeat(5000), "invalid_request"],
    ["gthr_" + "a".repeat(43), "invalid_grant"],
  ])("refuses refresh token #%# with %s", async (token, code) => {
    await expect(doRefresh(token)).rejects.toMatchObject({ code });
  });
});

describe("Revoke", () => {
  it("access_only bumps the session version and the next refresh carries it", async () => {
    const a = await login();
    const r = await revoke(
      deps,
      as(web),
      create(RevokeRequestSchema, { target: { case: "sessionId", value: a.sessionId! }, accessOnly: true }),
    );
    expect(r).toMatchObject({ sessionsRevoked: 0, propagated: false });
    expect(r.eventIds).toHaveLength(1);
    const outbox = await tdb.db.prisma.revocationOutbox.findFirstOrThrow({
      where: { eventId: r.eventIds![0]! },
    });
    expect(outbox).toMatchObject({ type: "session_version", payload: { sid: a.sessionId, minVersion: 2 } });
    const next = await doRefresh(a.refreshToken!);
    expect(decodeJwt(next.accessToken!).sv).toBe(2);
    expect(deps.published.at(-1)).toEqual(r.eventIds);
  });

  it("by refresh token, access token and subject; twice is not an error; others' sessions are untouched", async () => {
    const a = await login("carol");
    const byRefresh = await revoke(
      deps,
      as(web),
      create(RevokeRequestSchema, { target: { case: "refreshToken", value: a.refreshToken! } }),
    );
    expect(byRefresh.sessionsRevoked).toBe(1);
    const again = await revoke(
      deps,
      as(web),
      create(RevokeRequestSchema, { target: { case: "refreshToken", value: a.refreshToken! } }),
    );
    expect(again).toMatchObject({ sessionsRevoked: 0, eventIds: [] });

    const b = await login("carol");
    const byAccess = await revoke(
      deps,
      as(web),
      create(RevokeRequestSchema, { target: { case: "accessToken", value: b.accessToken! } }),
    );
    expect(byAccess.sessionsRevoked).toBe(1);
    expect(
      await count(
        "SELECT count(*) AS n FROM revoked_access_tokens WHERE jti = $1",
        decodeJwt(b.accessToken!).jti,
      ),
    ).toBe(1);
    expect(
      await introspect(deps, as(revoker), create(IntrospectRequestSchema, { token: b.refreshToken! })),
    ).toEqual({
      active: false,
    });

    // access_only: that token dies, its session and refresh token live on.
    const e = await login("erin");
    const onlyToken = await revoke(
      deps,
      as(web),
      create(RevokeRequestSchema, {
        target: { case: "accessToken", value: e.accessToken! },
        accessOnly: true,
      }),
    );
    expect(onlyToken.sessionsRevoked).toBe(0);
    expect(onlyToken.eventIds).toHaveLength(1);
    expect(
      await introspect(deps, as(revoker), create(IntrospectRequestSchema, { token: e.accessToken! })),
    ).toEqual({
      active: false,
    });
    expect(
      await introspect(deps, as(revoker), create(IntrospectRequestSchema, { token: e.refreshToken! })),
    ).toMatchObject({ active: true, sessionId: e.sessionId });

    const c = await login("dave");
    const d = await login("dave", other);
    // "other" cannot revoke web's session; the answer reveals nothing.
    const foreign = await revoke(
      deps,
      as(other),
      create(RevokeRequestSchema, { target: { case: "sessionId", value: c.sessionId! } }),
    );
    expect(foreign.sessionsRevoked).toBe(0);
    const mine = await revoke(
      deps,
      as(web),
      create(RevokeRequestSchema, { target: { case: "subject", value: "dave" } }),
    );
    expect(mine.sessionsRevoked).toBe(1);
    await expect(doRefresh(d.refreshToken!, other)).resolves.toBeTruthy();
    // A revoker acts for everyone and also sets the subject's not-before.
    const all = await revoke(
      deps,
      as(revoker),
      create(RevokeRequestSchema, { target: { case: "subject", value: "dave" }, reason: "account deleted" }),
    );
    expect(all.sessionsRevoked).toBe(1);
    expect(all.eventIds).toHaveLength(2);
    expect(await count("SELECT count(*) AS n FROM subject_revocations WHERE subject = 'dave'")).toBe(1);
  });

  it.each([
    [{ target: { case: "sessionId", value: "not-a-uuid" } }],
    [{ target: { case: "refreshToken", value: "nope" } }],
    [{ target: { case: "accessToken", value: "a.b.c" } }],
    [{}],
  ])("refuses a malformed target %o with invalid_request", async (req) => {
    await expect(revoke(deps, as(web), create(RevokeRequestSchema, req as never))).rejects.toMatchObject({
      code: "invalid_request",
    });
  });
});

describe("Introspect", () => {
  it("reports active tokens and only active:false for revoked, used, unknown or foreign ones", async () => {
    const a = await login("erin");
    const access = await introspect(
      deps,
      as(revoker),
      create(IntrospectRequestSchema, { token: a.accessToken! }),
    );
    expect(access).toMatchObject({
      active: true,
      subject: "erin",
      clientId: "web",
      sessionId: a.sessionId,
      tokenType: "Bearer",
    });
    const rt = await introspect(
      deps,
      as(revoker),
      create(IntrospectRequestSchema, { token: a.refreshToken! }),
    );
    expect(rt).toMatchObject({ active: true, tokenType: "refresh_token", sessionId: a.sessionId });
    const b = await doRefresh(a.refreshToken!);
    expect(
      await introspect(deps, as(revoker), create(IntrospectRequestSchema, { token: a.refreshToken! })),
    ).toEqual({ active: false });
    await revoke(
      deps,
      as(web),
      create(RevokeRequestSchema, { target: { case: "sessionId", value: a.sessionId! }, accessOnly: true }),
    );
    expect(
      await introspect(deps, as(revoker), create(IntrospectRequestSchema, { token: b.accessToken! })),
    ).toEqual({ active: false });
    for (const junk of ["garbage", "a.b.c", "gthr_" + "z".repeat(43)]) {
      expect(await introspect(deps, as(revoker), create(IntrospectRequestSchema, { token: junk }))).toEqual({
        active: false,
      });
    }
    clock.advance(601_000);
    expect(
      await introspect(deps, as(revoker), create(IntrospectRequestSchema, { token: a.accessToken! })),
    ).toEqual({ active: false });
  });
});

describe("ListSessions", () => {
  it("lists a subject's live sessions newest first, paged, and only the caller's own", async () => {
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      clock.advance(1000);
      ids.push((await login("frank")).sessionId!);
    }
    await login("frank", other);
    await revoke(
      deps,
      as(web),
      create(RevokeRequestSchema, { target: { case: "sessionId", value: ids[0]! } }),
    );
    const seen: string[] = [];
    let pageToken = "";
    do {
      const page = await listSessions(
        deps,
        as(web),
        create(ListSessionsRequestSchema, { subject: "frank", pageSize: 2, pageToken }),
      );
      seen.push(...page.sessions!.map((s) => s.sessionId!));
      pageToken = page.nextPageToken ?? "";
    } while (pageToken !== "");
    expect(seen).toEqual(ids.slice(1).reverse());
    expect(
      (await listSessions(deps, as(web), create(ListSessionsRequestSchema, { subject: "nobody" }))).sessions,
    ).toEqual([]);
    await expect(
      listSessions(
        deps,
        as(web),
        create(ListSessionsRequestSchema, { subject: "frank", pageToken: "garbage" }),
      ),
    ).rejects.toMatchObject({ code: "invalid_request" });
  });
});
