import type { AddressInfo } from "node:net";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import express from "express";
import { compilePolicy, createAuthInterceptor, identityKey } from "gatehouse/connect";
import { gatehouseAuth } from "gatehouse/express";
import { createGatehouseVerifier, GatehouseError, type GatehouseVerifier } from "gatehouse/verify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  IntrospectResponseSchema,
  TokenService,
} from "../../services/gen/proto/gatehouse/v1/token_service_pb.ts";
import { ErrorInfoSchema } from "../../services/gen/proto/google/rpc/error_details_pb.ts";
import { type TestDatabase, useTestDatabase } from "../support/database.ts";
import { createLocalIssuer } from "../support/local-issuer.ts";
import { type TestRedis, useTestRedis } from "../support/redis.ts";
import { type SdkTokenService, startSdkTokenService } from "../support/sdk-token-service.ts";
import { ISSUER } from "../support/sidecar-fixtures.ts";
import { grpcTokenClient } from "../support/token-clients.ts";

/**
 * `gatehouse/verify`, `gatehouse/express` and `gatehouse/connect`, imported by their public names,
 * against a real token service publishing revocations to a real Redis stream: good tokens pass,
 * each bad one fails with its own code, and a revocation reaches the in-process verifier.
 */
let tdb: TestDatabase;
let tredis: TestRedis;
let ts: SdkTokenService;
let verifier: GatehouseVerifier;
let rpc: ReturnType<typeof grpcTokenClient>;
const closers: (() => unknown)[] = [];

beforeAll(async () => {
  tdb = await useTestDatabase();
  tredis = await useTestRedis("sdk-verify");
  const stream = `${tredis.prefix}revocations`;
  ts = await startSdkTokenService(tdb, { redisUrl: tredis.url, stream });
  rpc = grpcTokenClient(ts.service.grpcPort, { id: ts.web.clientId, secret: ts.web.clientSecret });
  verifier = createGatehouseVerifier({
    issuer: ISSUER,
    audiences: ["orders"],
    jwksUrl: ts.jwksUrl,
    revocation: { redisUrl: tredis.url, stream },
  });
  await verifier.ready();
});

afterAll(async () => {
  for (const close of closers) await close();
  await verifier?.close();
  rpc?.close();
  await ts?.stop();
  await tredis?.cleanup();
  await tdb?.drop();
});

async function issue(subject: string, scopes: string[] = ["orders:read"], audience = ["orders"]) {
  const r = await rpc.issue({ subject, audience, scopes });
  return { token: r.accessToken, sessionId: r.sessionId };
}

/** The code a rejected promise carries (a GatehouseError). */
async function codeOf(promise: Promise<unknown>): Promise<string> {
  const err = await promise.then(
    () => expect.unreachable("should have been refused"),
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(GatehouseError);
  return (err as GatehouseError).code;
}

/** A token with one character of its signature changed. */
function tamper(token: string): string {
  const i = token.length - 5;
  return token.slice(0, i) + (token[i] === "A" ? "B" : "A") + token.slice(i + 1);
}

describe("gatehouse/verify", () => {
  it("accepts a good token and returns its typed claims", async () => {
    const { token, sessionId } = await issue("alice", ["orders:read", "orders:write"]);
    const claims = await verifier.verify(token, { scopes: { allOf: ["orders:read"] } });
    expect(claims).toMatchObject({
      subject: "alice",
      clientId: "web",
      audience: ["orders"],
      scopes: ["orders:read", "orders:write"],
      sessionId,
    });
    expect(claims.token).toBeUndefined();
  });

  it("refuses each bad token with its own code", async () => {
    const { token } = await issue("bob");
    const billing = (await issue("bob", ["billing:read"], ["billing"])).token;
    const foreign = (await createLocalIssuer()).mint({ subject: "bob", scopes: ["orders:read"] });
    const cases: [string, Promise<unknown>][] = [
      ["missing_token", verifier.verify("")],
      ["malformed_token", verifier.verify("not.a.jwt")],
      ["bad_signature", verifier.verify(tamper(token))],
      ["unknown_key", verifier.verify(foreign)],
      ["wrong_audience", verifier.verify(billing)],
      ["insufficient_scope", verifier.verify(token, { scopes: { allOf: ["orders:write"] } })],
    ];
    for (const [code, refused] of cases) expect([code, await codeOf(refused)]).toEqual([code, code]);
  });

  it("checks issuer, expiry and algorithms as configured", async () => {
    const { token } = await issue("carol");
    const make = (extra: Partial<Parameters<typeof createGatehouseVerifier>[0]>) => {
      const v = createGatehouseVerifier({
        issuer: ISSUER,
        audiences: ["orders"],
        jwksUrl: ts.jwksUrl,
        revocation: "none",
        ...extra,
      });
      closers.push(() => v.close());
      return v;
    };
    expect(await codeOf(make({ issuer: "https://other.test" }).verify(token))).toBe("wrong_issuer");
    const later = make({ now: () => Date.now() + 3_600_000 });
    await later.ready();
    expect(await codeOf(later.verify(token))).toBe("token_expired");
    expect(await codeOf(make({ algorithms: ["ES256"] }).verify(token))).toBe("unsupported_algorithm");
  });

  it("refuses bad options up front", () => {
    const base = { issuer: ISSUER, audiences: ["orders"], jwksUrl: ts.jwksUrl, revocation: "none" } as const;
    expect(() => createGatehouseVerifier({ ...base, audiences: [] })).toThrow(TypeError);
    expect(() => createGatehouseVerifier({ ...base, revocation: undefined as never })).toThrow(TypeError);
    expect(() => createGatehouseVerifier({ ...base, clockSkewMs: 10_000_000 })).toThrow(TypeError);
    expect(() => createGatehouseVerifier({ ...base, jwksUrl: "ftp://x/jwks" })).toThrow(TypeError);
  });

  it("rejects a token once its session is revoked: the Redis stream reaches the verifier", async () => {
    const { token, sessionId } = await issue("dave");
    await verifier.verify(token);
    await rpc.revoke({ target: { case: "sessionId", value: sessionId } });
    await expect.poll(() => codeOf(verifier.verify(token)), { timeout: 5000 }).toBe("session_revoked");
  });
});

describe("gatehouse/express", () => {
  let base: string;

  beforeAll(async () => {
    const app = express();
    app.get(
      "/orders",
      gatehouseAuth({ verifier, requirement: { scopes: { allOf: ["orders:read"] } } }),
      (req, res) => {
        res.json({ user: req.auth?.subject, scopes: req.auth?.scopes });
      },
    );
    app.get(
      "/admin",
      gatehouseAuth({ verifier, requirement: { scopes: { allOf: ["orders:write"] } } }),
      (_req, res) => {
        res.json({ ok: true });
      },
    );
    app.get("/maybe", gatehouseAuth({ verifier, optional: true }), (req, res) => {
      res.json({ user: req.auth?.subject ?? null });
    });
    const server = app.listen(0, "127.0.0.1");
    await new Promise((resolve) => server.once("listening", resolve));
    closers.push(() => new Promise((resolve) => server.close(resolve)));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  const get = (path: string, token?: string) =>
    fetch(`${base}${path}`, token === undefined ? {} : { headers: { authorization: `Bearer ${token}` } });

  it("puts the claims in req.auth", async () => {
    const { token } = await issue("erin");
    const res = await get("/orders", token);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ user: "erin", scopes: ["orders:read"] });
  });

  it("answers 401 with WWW-Authenticate and the code for a missing or bad token", async () => {
    const missing = await get("/orders");
    expect(missing.status).toBe(401);
    expect(missing.headers.get("www-authenticate")).toBe('Bearer realm="gatehouse"');
    expect(await missing.json()).toMatchObject({ error: "missing_token" });

    const { token } = await issue("frank");
    for (const [bad, code] of [
      [tamper(token), "bad_signature"],
      ["not.a.jwt", "malformed_token"],
    ] as const) {
      const res = await get("/orders", bad);
      expect(res.status).toBe(401);
      expect(res.headers.get("www-authenticate")).toBe(
        `Bearer realm="gatehouse", error="invalid_token", error_description="${code}"`,
      );
      expect(await res.json()).toMatchObject({ error: code });
    }
    const scheme = await fetch(`${base}/orders`, { headers: { authorization: "Bearer a b" } });
    expect(scheme.status).toBe(401);
    expect(await scheme.json()).toMatchObject({ error: "malformed_token" });
  });

  it("answers 403 insufficient_scope for a route's missing scope", async () => {
    const { token } = await issue("gina");
    const res = await get("/admin", token);
    expect(res.status).toBe(403);
    expect(res.headers.get("www-authenticate")).toContain('error="insufficient_scope"');
    expect(await res.json()).toMatchObject({ error: "insufficient_scope" });
  });

  it("answers 401 session_revoked after a revocation", async () => {
    const { token, sessionId } = await issue("hank");
    expect((await get("/orders", token)).status).toBe(200);
    await rpc.revoke({ target: { case: "sessionId", value: sessionId } });
    await expect.poll(async () => (await get("/orders", token)).status, { timeout: 5000 }).toBe(401);
    expect(await (await get("/orders", token)).json()).toMatchObject({ error: "session_revoked" });
  });

  it("optional: no header passes without req.auth, a bad token is still refused", async () => {
    expect(await (await get("/maybe")).json()).toEqual({ user: null });
    const { token } = await issue("ivy");
    expect(await (await get("/maybe", token)).json()).toEqual({ user: "ivy" });
    expect((await get("/maybe", tamper(token))).status).toBe(401);
  });
});

describe("gatehouse/connect", () => {
  // A service guarded by the interceptor, with one public method, run in memory: what is under
  // test is the interceptor, not the network.
  const policy = compilePolicy(
    [
      "rules:",
      "  - match: { grpc: /gatehouse.v1.TokenService/GetJwks }",
      "    public: true",
      "  - match: { grpc: /gatehouse.v1.TokenService/Revoke }",
      "    scopes: { allOf: [orders:write] }",
    ].join("\n"),
  );
  const transport = () =>
    createRouterTransport((router) =>
      router.service(
        TokenService,
        {
          introspect: (_req, ctx) =>
            create(IntrospectResponseSchema, {
              active: true,
              subject: ctx.values.get(identityKey)?.subject ?? "",
            }),
          getJwks: (_req, ctx) => ({ keys: [{ kid: ctx.values.get(identityKey)?.subject ?? "anonymous" }] }),
          revoke: () => ({ sessionsRevoked: 0 }),
        },
        { interceptors: [createAuthInterceptor({ verifier, policy })] },
      ),
    );
  const clientWith = (token?: string) =>
    createClient(TokenService, transport()).introspect(
      {},
      token === undefined ? {} : { headers: { authorization: `Bearer ${token}` } },
    );

  async function failure(call: Promise<unknown>): Promise<[Code, string | undefined]> {
    const err = ConnectError.from(
      await call.then(
        () => expect.unreachable("should have been refused"),
        (e: unknown) => e,
      ),
    );
    return [err.code, err.findDetails(ErrorInfoSchema)[0]?.reason];
  }

  it("hands the verified claims to the handler", async () => {
    const { token } = await issue("jack");
    expect((await clientWith(token)).subject).toBe("jack");
  });

  it("refuses each bad token with UNAUTHENTICATED and the code in ErrorInfo", async () => {
    const { token } = await issue("kate");
    expect(await failure(clientWith())).toEqual([Code.Unauthenticated, "missing_token"]);
    expect(await failure(clientWith(tamper(token)))).toEqual([Code.Unauthenticated, "bad_signature"]);
    expect(await failure(clientWith("not.a.jwt"))).toEqual([Code.Unauthenticated, "malformed_token"]);
  });

  it("applies the policy: PERMISSION_DENIED for a missing scope, public methods without a token", async () => {
    const { token } = await issue("liam");
    const c = createClient(TokenService, transport());
    expect(await failure(c.revoke({}, { headers: { authorization: `Bearer ${token}` } }))).toEqual([
      Code.PermissionDenied,
      "insufficient_scope",
    ]);
    expect((await c.getJwks({})).keys[0]?.kid).toBe("anonymous");
    expect((await c.getJwks({}, { headers: { authorization: `Bearer ${token}` } })).keys[0]?.kid).toBe(
      "liam",
    );
  });

  it("refuses a revoked session's token", async () => {
    const { token, sessionId } = await issue("mia");
    await clientWith(token);
    await rpc.revoke({ target: { case: "sessionId", value: sessionId } });
    await expect
      .poll(() => failure(clientWith(token)), { timeout: 5000 })
      .toEqual([Code.Unauthenticated, "session_revoked"]);
  });
});
