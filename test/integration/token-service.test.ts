import * as http2 from "node:http2";
import * as net from "node:net";
import { createRemoteJWKSet, decodeJwt, jwtVerify } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "../../services/shared/logging/index.ts";
import { encodePageToken } from "../../services/token/admin/page-cursor.ts";
import { type RunningTokenService, startTokenService } from "../../services/token/token-service.ts";
import { hashRefreshToken } from "../../services/token/tokens/refresh-token-format.ts";
import { type TestDatabase, useTestDatabase } from "../support/database.ts";
import {
  connectJsonClient,
  connectReason,
  type GrpcFailure,
  grpcTokenClient,
} from "../support/token-clients.ts";
import { createTestClient, testClock } from "../support/token-fixtures.ts";
import { testServiceSettings } from "../support/token-service-settings.ts";

let tdb: TestDatabase;
let service: RunningTokenService;
const clock = testClock(Date.now());
const creds: Record<string, { id: string; secret: string }> = {};
const ISSUER = "https://auth.test";
const settings = testServiceSettings({ issuer: ISSUER, keyRotation: true });

beforeAll(async () => {
  tdb = await useTestDatabase();
  const { prisma } = tdb.db;
  for (const [id, roles] of [
    ["web", ["issuer"]],
    ["svc", ["service"]],
    ["ops", ["revoker"]],
    ["intro", ["introspector"]],
    ["root", ["admin"]],
    ["nobody", []],
  ] as const) {
    creds[id] = { id, secret: (await createTestClient(prisma, { id, roles: [...roles] })).secret };
  }
  creds.gone = {
    id: "gone",
    secret: (await createTestClient(prisma, { id: "gone", disabledAt: new Date() })).secret,
  };
  service = await startTokenService({
    settings,
    database: { kind: "postgres", url: tdb.url },
    logger: createLogger({ level: "silent", component: "token", pretty: false }),
    now: clock.now,
  });
});
afterAll(async () => {
  await service?.shutdown();
  await tdb?.drop();
});

const grpcAs = (id: string) => grpcTokenClient(service.grpcPort, creds[id]);
const failure = (p: Promise<unknown>) =>
  p.then(
    () => expect.fail("expected the call to fail"),
    (e: GrpcFailure) => e,
  );

describe("caller authentication over gRPC", () => {
  it.each([
    ["no credentials", undefined],
    ["a wrong secret", { id: "web", secret: "gths_wrong" }],
    ["an unknown client", { id: "stranger", secret: "gths_wrong" }],
    ["a disabled client", "gone"],
  ])("refuses %s with UNAUTHENTICATED / invalid_client", async (_label, who) => {
    const c = grpcTokenClient(service.grpcPort, typeof who === "string" ? creds[who] : who);
    const f = await failure(c.issue({ subject: "u", audience: ["orders"] }));
    expect(f).toMatchObject({ code: 16, reason: "invalid_client", domain: "gatehouse" });
    c.close();
  });

  it.each([
    ["svc", "issue", { subject: "u", audience: ["orders"] }],
    ["web", "issueServiceToken", { audience: ["orders"] }],
    ["web", "introspect", { token: "x" }],
    ["ops", "listSessions", { subject: "u" }],
    ["nobody", "issue", { subject: "u", audience: ["orders"] }],
  ] as const)(
    "refuses %s calling %s with PERMISSION_DENIED / unauthorized_client",
    async (who, method, req) => {
      const c = grpcAs(who);
      const f = await failure((c[method] as (r: unknown) => Promise<unknown>)(req));
      expect(f).toMatchObject({ code: 7, reason: "unauthorized_client" });
      c.close();
    },
  );

  it("serves GetJwks without credentials", async () => {
    const c = grpcTokenClient(service.grpcPort);
    const jwks = await c.getJwks({});
    expect(jwks.keys[0]).toMatchObject({ kty: "OKP", crv: "Ed25519", alg: "EdDSA", use: "sig" });
    c.close();
  });
});

describe("Issue and Refresh over gRPC and Connect/JSON", () => {
  it("issues over gRPC and the token verifies with jose against the HTTP JWKS", async () => {
    const c = grpcAs("web");
    const r = await c.issue({ subject: "alice", audience: ["orders"], scopes: ["orders:read"] });
    const jwks = createRemoteJWKSet(new URL(`http://127.0.0.1:${service.httpPort}/.well-known/jwks.json`));
    const { payload } = await jwtVerify(r.accessToken, jwks, {
      issuer: ISSUER,
      audience: "orders",
      typ: "at+jwt",
      currentDate: new Date(clock.now()),
    });
    expect(payload).toMatchObject({
      sub: "alice",
      client_id: "web",
      sid: r.sessionId,
      sv: 1,
      scope: "orders:read",
    });
    c.close();
  });

  it("issues, refreshes and revokes over Connect/JSON", async () => {
    const call = connectJsonClient(service.httpPort, creds.web);
    const issued = await call("Issue", {
      subject: "bob",
      audience: ["orders"],
      device: { userAgent: "curl/8" },
    });
    expect(issued.status).toBe(200);
    expect(issued.json).toMatchObject({ tokenType: "Bearer", sessionId: expect.any(String) });
    const refreshed = await call("Refresh", { refreshToken: issued.json.refreshToken });
    expect(refreshed.status).toBe(200);
    expect(refreshed.json.refreshToken).not.toBe(issued.json.refreshToken);
    const revoked = await call("Revoke", { sessionId: issued.json.sessionId });
    expect(revoked.json.sessionsRevoked).toBe(1);
    expect(revoked.json.propagated).toBeUndefined(); // proto3 JSON leaves out false: events wait in the outbox
    const after = await call("Refresh", { refreshToken: refreshed.json.refreshToken });
    expect(after.status).toBe(401);
    expect(connectReason(after.json)).toBe("session_revoked");
    const bad = await call("Issue", { subject: "", audience: ["orders"] });
    expect(bad.status).toBe(400);
    expect(connectReason(bad.json)).toBe("invalid_request");
    const denied = await call("Issue", { subject: "x", audience: ["elsewhere"] });
    expect(denied.status).toBe(403);
    expect(connectReason(denied.json)).toBe("audience_not_allowed");
  });

  it("answers 50 parallel gRPC refreshes of one token with one successor", async () => {
    const c = grpcAs("web");
    const first = await c.issue({ subject: "carol", audience: ["orders"] });
    const results = await Promise.all(
      Array.from({ length: 50 }, () => c.refresh({ refreshToken: first.refreshToken })),
    );
    expect(new Set(results.map((r) => r.refreshToken)).size).toBe(1);
    // One rotation, whose successor is the session's live token.
    const live = await tdb.sql.query(
      "SELECT count(*)::int AS n FROM sessions WHERE id = $1 AND refresh_generation = 2 AND refresh_hash = $2",
      [first.sessionId, hashRefreshToken(results[0]!.refreshToken)],
    );
    expect(live.rows[0].n).toBe(1);
    c.close();
  });

  it("detects reuse after the grace window and kills the family", async () => {
    const c = grpcAs("web");
    const first = await c.issue({ subject: "dave", audience: ["orders"] });
    const second = await c.refresh({ refreshToken: first.refreshToken });
    clock.advance(11_000);
    expect(await failure(c.refresh({ refreshToken: first.refreshToken }))).toMatchObject({
      code: 16,
      reason: "refresh_token_reused",
    });
    expect(await failure(c.refresh({ refreshToken: second.refreshToken }))).toMatchObject({
      code: 16,
      reason: "session_revoked",
    });
    c.close();
  });

  it("never returns a usable token from a refresh racing a revoke", async () => {
    const c = grpcAs("web");
    for (let i = 0; i < 5; i++) {
      const first = await c.issue({ subject: `erin-${i}`, audience: ["orders"] });
      const [r] = await Promise.allSettled([
        c.refresh({ refreshToken: first.refreshToken }),
        c.revoke({ target: { case: "sessionId", value: first.sessionId } }),
      ]);
      if (r.status === "fulfilled") {
        expect(await failure(c.refresh({ refreshToken: r.value.refreshToken }))).toMatchObject({
          reason: "session_revoked",
        });
      }
    }
    c.close();
  });

  it.each([
    ["empty", ""],
    ["wrong prefix", `ghr_${"a".repeat(43)}`],
    ["truncated", "gthr_abc"],
    ["non-base64url", `gthr_${"*".repeat(43)}`],
    ["oversized", "a".repeat(5000)],
  ])("refuses a %s refresh token with INVALID_ARGUMENT and writes nothing", async (_label, token) => {
    const c = grpcAs("web");
    // Refresh state: legacy token rows, and the generations of every session.
    const state =
      "SELECT ((SELECT count(*) FROM refresh_tokens) + (SELECT coalesce(sum(refresh_generation), 0) FROM sessions))::int AS n";
    const before = await tdb.sql.query(state);
    expect(await failure(c.refresh({ refreshToken: token }))).toMatchObject({
      code: 3,
      reason: "invalid_request",
    });
    const after = await tdb.sql.query(state);
    expect(after.rows[0].n).toBe(before.rows[0].n);
    c.close();
  });
});

describe("other RPCs", () => {
  it("IssueServiceToken gives a sessionless token; Introspect and ListSessions work by role", async () => {
    const svc = grpcAs("svc");
    const st = await svc.issueServiceToken({ audience: ["orders"], scopes: ["orders:read"] });
    const claims = decodeJwt(st.accessToken);
    expect(claims).toMatchObject({ sub: "svc", client_id: "svc" });
    expect(claims.sid).toBeUndefined();
    const intro = grpcAs("intro");
    expect(await intro.introspect({ token: st.accessToken })).toMatchObject({
      active: true,
      subject: "svc",
      tokenType: "Bearer",
    });
    expect(await intro.introspect({ token: "junk" })).toMatchObject({ active: false, subject: "" });
    const web = grpcAs("web");
    await web.issue({ subject: "frank", audience: ["orders"] });
    const page = await web.listSessions({ subject: "frank" });
    expect(page.sessions).toHaveLength(1);
    for (const c of [svc, intro, web]) c.close();
  });

  const SESSION = "00000000-0000-4000-8000-000000000000";
  it.each([
    ["[1e300, uuid]", Buffer.from(JSON.stringify([1e300, SESSION])).toString("base64url")],
    ["[1e300, uuid] with this listing's fingerprint", encodePageToken([1e300, SESSION], ["frank"])],
    ["[-1, uuid] with this listing's fingerprint", encodePageToken([-1, SESSION], ["frank"])],
    ["[0.5, uuid] with this listing's fingerprint", encodePageToken([0.5, SESSION], ["frank"])],
  ])("answers a ListSessions page token holding %s with INVALID_ARGUMENT", async (_label, pageToken) => {
    const web = grpcAs("web");
    expect(await failure(web.listSessions({ subject: "frank", pageToken }))).toMatchObject({
      code: 3,
      reason: "invalid_request",
      metadata: { field: "page_token" },
    });
    web.close();
  });

  it("a revoker revokes any client's sessions by subject", async () => {
    const web = grpcAs("web");
    await web.issue({ subject: "gina", audience: ["orders"] });
    await web.issue({ subject: "gina", audience: ["orders"] });
    const ops = grpcAs("ops");
    const r = await ops.revoke({ target: { case: "subject", value: "gina" }, reason: "offboarded" });
    expect(r.sessionsRevoked).toBe(2);
    expect(r.eventIds).toHaveLength(3);
    for (const c of [web, ops]) c.close();
  });
});

describe("HTTP endpoints", () => {
  const base = () => `http://127.0.0.1:${service.httpPort}`;

  it("serves the JWKS with max-age and a working ETag", async () => {
    const res = await fetch(`${base()}/.well-known/jwks.json`);
    expect(res.status).toBe(200);
    expect(res.headers.get("cache-control")).toBe("public, max-age=300");
    const etag = res.headers.get("etag")!;
    const again = await fetch(`${base()}/.well-known/jwks.json`, { headers: { "if-none-match": etag } });
    expect(again.status).toBe(304);
  });

  it("serves RFC 8414 metadata, health, readiness and metrics", async () => {
    expect(await (await fetch(`${base()}/.well-known/oauth-authorization-server`)).json()).toMatchObject({
      issuer: ISSUER,
      jwks_uri: `${ISSUER}/.well-known/jwks.json`,
    });
    expect((await fetch(`${base()}/healthz`)).status).toBe(200);
    // No bus here (testServiceSettings: GATEHOUSE_REVOCATION=none), which readiness reports.
    expect(await (await fetch(`${base()}/readyz`)).json()).toEqual({
      ready: true,
      problems: [],
      revocation: "none",
    });
    const metrics = await (await fetch(`http://127.0.0.1:${service.adminPort}/metrics`)).text();
    expect(metrics).toContain("gatehouse_rpc_duration_seconds");
    expect(metrics).toMatch(/gatehouse_token_revocation_transport\{transport="none"[^}]*\} 1/);
    expect(metrics).not.toMatch(/gthr_/);
  });
});

describe("listener limits", () => {
  /** A connection that sends nothing. */
  async function connect(port: number): Promise<net.Socket> {
    const socket = net.connect(port, "127.0.0.1");
    socket.on("error", () => {});
    await new Promise((resolve) => socket.once("connect", resolve));
    return socket;
  }
  const closedWithin = (socket: net.Socket, ms: number) =>
    new Promise<boolean>((resolve) => {
      if (socket.destroyed) return resolve(true);
      const timer = setTimeout(() => resolve(false), ms);
      socket.once("close", () => {
        clearTimeout(timer);
        resolve(true);
      });
    });

  /** SETTINGS_MAX_CONCURRENT_STREAMS as an HTTP/2 client on `port` is told it. */
  async function streamLimit(port: number): Promise<number | undefined> {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    try {
      return await new Promise((resolve, reject) => {
        session.once("remoteSettings", (remote) => resolve(remote.maxConcurrentStreams));
        session.once("error", reject);
      });
    } finally {
      session.destroy();
    }
  }

  it("GATEHOUSE_H2_MAX_CONCURRENT_STREAMS sets the native gRPC listener's stream limit; the admin listener's is 100", async () => {
    expect(await streamLimit(service.grpcPort)).toBe(1000);
    expect(await streamLimit(service.adminPort)).toBe(100);
    const narrow = await startTokenService({
      settings: { ...settings, keyRotation: false, h2MaxConcurrentStreams: 16 },
      database: { kind: "postgres", url: tdb.url },
      logger: createLogger({ level: "silent", component: "token", pretty: false }),
      now: clock.now,
    });
    try {
      expect(await streamLimit(narrow.grpcPort)).toBe(16);
    } finally {
      await narrow.shutdown();
    }
  });

  it("GATEHOUSE_MAX_CONNECTIONS caps open connections on each listener (gRPC, HTTP, admin): one more is closed at once, a freed slot is taken again", async () => {
    const capped = await startTokenService({
      settings: { ...settings, keyRotation: false, maxConnections: 2 },
      database: { kind: "postgres", url: tdb.url },
      logger: createLogger({ level: "silent", component: "token", pretty: false }),
      now: clock.now,
    });
    const sockets: net.Socket[] = [];
    try {
      for (const port of [capped.grpcPort, capped.httpPort, capped.adminPort]) {
        const [first, second] = [await connect(port), await connect(port)];
        const over = await connect(port);
        sockets.push(first, second, over);
        expect(await closedWithin(over, 1000)).toBe(true);
        expect(first.destroyed || second.destroyed).toBe(false);
        first.destroy();
        await new Promise((resolve) => setTimeout(resolve, 100));
        const again = await connect(port);
        sockets.push(again);
        expect({ port, closed: await closedWithin(again, 300) }).toEqual({ port, closed: false });
      }
    } finally {
      for (const socket of sockets) socket.destroy();
      await capped.shutdown();
    }
  });
});
