import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createMemoryRevocationState } from "../../services/sidecar/revocation-state/index.ts";
import type { RunningSidecar } from "../../services/sidecar/sidecar.ts";
import { type TestDatabase, useTestDatabase } from "../support/database.ts";
import {
  ISSUER,
  removePolicies,
  startTestSidecar,
  startTestTokenService,
  type TestTokenService,
  writePolicy,
} from "../support/sidecar-fixtures.ts";

const POLICY = `
rules:
  - match: { prefix: /public }
    public: true
  - match: { methods: [POST, DELETE], prefix: /orders }
    scopes: { allOf: [orders:write] }
  - match: { grpc: /shop.v1.Orders/* }
    scopes: { anyOf: [orders:read] }
`;

let tdb: TestDatabase;
let ts: TestTokenService;
let sidecar: RunningSidecar;
/** The same policy behind nginx: GATEHOUSE_FORWARD_AUTH_HEADERS=x-original. */
let nginxSidecar: RunningSidecar;
const revocation = createMemoryRevocationState({ stalenessBoundMs: 60_000 });
let reader: { token: string; sessionId: string };
let writer: { token: string; sessionId: string };

beforeAll(async () => {
  tdb = await useTestDatabase();
  ts = await startTestTokenService(tdb);
  revocation.markFresh(Date.now());
  sidecar = await startTestSidecar(
    {
      GATEHOUSE_TOKEN_SERVICE_URL: ts.url,
      GATEHOUSE_POLICY_FILE: writePolicy(POLICY),
      GATEHOUSE_UPSTREAM: "http://127.0.0.1:9",
      GATEHOUSE_JWKS_COOLDOWN: "0s",
      GATEHOUSE_FORWARD_TOKEN: "true",
    },
    { revocation },
  );
  nginxSidecar = await startTestSidecar(
    {
      GATEHOUSE_TOKEN_SERVICE_URL: ts.url,
      GATEHOUSE_POLICY_FILE: writePolicy(POLICY),
      GATEHOUSE_UPSTREAM: "http://127.0.0.1:9",
      GATEHOUSE_FORWARD_AUTH_HEADERS: "x-original",
    },
    { revocation },
  );
  reader = await ts.issue("alice", ["orders:read"]);
  writer = await ts.issue("bob", ["orders:read", "orders:write"]);
});
afterAll(async () => {
  await sidecar?.shutdown(100);
  await nginxSidecar?.shutdown(100);
  await ts?.service.shutdown();
  await tdb?.drop();
  removePolicies();
});

/** `/public/a…(N bytes)` in a test table stands for a path that long (titles stay readable). */
const longPath = (label: string) => label.replace(/a…\((\d+) bytes\)$/, (_, n) => "a".repeat(Number(n)));

const authz = (headers: Record<string, string>, method = "GET") =>
  fetch(`http://127.0.0.1:${sidecar.controlPort}/authz`, { method, headers });
const nginxAuthz = (headers: Record<string, string>, method = "GET") =>
  fetch(`http://127.0.0.1:${nginxSidecar.controlPort}/authz`, { method, headers });

describe("forward-auth /authz", () => {
  it("answers 200 with identity headers for Traefik's X-Forwarded-* headers", async () => {
    const res = await authz({
      authorization: `Bearer ${reader.token}`,
      "x-forwarded-method": "GET",
      "x-forwarded-uri": "/orders/42?expand=items",
      "x-forwarded-host": "shop.example",
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("x-gatehouse-subject")).toBe("alice");
    expect(res.headers.get("x-gatehouse-client-id")).toBe("web");
    expect(res.headers.get("x-gatehouse-scopes")).toBe("orders:read");
    expect(res.headers.get("x-gatehouse-session-id")).toBe(reader.sessionId);
    expect(res.headers.get("x-gatehouse-jwt")).toBe(reader.token);
    expect(res.headers.get("cache-control")).toBe("no-store");
  });

  it("reads nginx's X-Original-Method / X-Original-URI when so configured, and the subrequest's method without them", async () => {
    const denied = await nginxAuthz({
      authorization: `Bearer ${reader.token}`,
      "x-original-method": "DELETE",
      "x-original-uri": "/orders/42",
    });
    expect(denied.status).toBe(403);
    const allowed = await nginxAuthz({
      authorization: `Bearer ${writer.token}`,
      "x-original-method": "DELETE",
      "x-original-uri": "/orders/42",
    });
    expect(allowed.status).toBe(200);
    expect(allowed.headers.get("x-gatehouse-subject")).toBe("bob");
    // No method header: nginx's auth_request subrequest keeps the original method.
    const post = await nginxAuthz(
      { authorization: `Bearer ${reader.token}`, "x-original-uri": "/orders" },
      "POST",
    );
    expect(post.status).toBe(403);
    const head = await nginxAuthz(
      { authorization: `Bearer ${reader.token}`, "x-original-uri": "/orders" },
      "HEAD",
    );
    expect(head.status).toBe(200);
  });

  it("reads only the configured header pair: a caller's X-Forwarded-Uri does not steer an nginx sidecar, nor X-Original-URI a Traefik one", async () => {
    // nginx passes the caller's own headers into the auth_request subrequest.
    const alone = await nginxAuthz({ "x-forwarded-method": "GET", "x-forwarded-uri": "/public/x" });
    expect(alone.status).toBe(400);
    expect(await alone.json()).toMatchObject({ error: "invalid_request" });
    const traefik = await authz({ "x-original-method": "GET", "x-original-uri": "/public/x" });
    expect(traefik.status).toBe(400);
    expect(await traefik.json()).toMatchObject({ error: "invalid_request" });
  });

  it("refuses 400 conflicting_forward_headers when both pairs come with different URIs or methods, whatever the setting", async () => {
    const spoofedUri = { "x-original-uri": "/orders", "x-forwarded-uri": "/public/x" };
    const spoofedMethod = {
      "x-original-method": "POST",
      "x-original-uri": "/orders",
      "x-forwarded-method": "GET",
      "x-forwarded-uri": "/orders",
    };
    for (const ask of [authz, nginxAuthz]) {
      for (const headers of [spoofedUri, spoofedMethod]) {
        const res = await ask({ authorization: `Bearer ${reader.token}`, ...headers });
        expect(res.status).toBe(400);
        expect(await res.json()).toMatchObject({ error: "conflicting_forward_headers" });
      }
    }
    // nginx's subrequest method stands in for a missing X-Original-Method.
    const viaMethod = await nginxAuthz(
      { "x-original-uri": "/orders", "x-forwarded-method": "GET", "x-forwarded-uri": "/orders" },
      "POST",
    );
    expect(await viaMethod.json()).toMatchObject({ error: "conflicting_forward_headers" });
    // Both pairs agreeing is not a conflict.
    const agreeing = await nginxAuthz({
      authorization: `Bearer ${reader.token}`,
      "x-original-method": "GET",
      "x-original-uri": "/orders",
      "x-forwarded-method": "GET",
      "x-forwarded-uri": "/orders",
    });
    expect(agreeing.status).toBe(200);
  });

  it("answers 401 with the RFC 6750 challenge and a JSON body", async () => {
    const missing = await authz({ "x-forwarded-method": "GET", "x-forwarded-uri": "/orders" });
    expect(missing.status).toBe(401);
    expect(missing.headers.get("www-authenticate")).toBe('Bearer realm="gatehouse"');
    expect(await missing.json()).toEqual({ error: "missing_token", message: "no bearer token" });

    const tampered = `${reader.token.slice(0, -4)}AAAA`;
    const bad = await authz({
      authorization: `Bearer ${tampered}`,
      "x-forwarded-method": "GET",
      "x-forwarded-uri": "/orders",
    });
    expect(bad.status).toBe(401);
    expect(bad.headers.get("www-authenticate")).toBe(
      'Bearer realm="gatehouse", error="invalid_token", error_description="bad_signature"',
    );
    expect(await bad.json()).toMatchObject({ error: "bad_signature" });
  });

  it("answers 403 insufficient_scope naming the scope the route needs", async () => {
    const res = await authz({
      authorization: `Bearer ${reader.token}`,
      "x-forwarded-method": "POST",
      "x-forwarded-uri": "/orders",
    });
    expect(res.status).toBe(403);
    expect(res.headers.get("www-authenticate")).toBe(
      'Bearer realm="gatehouse", error="insufficient_scope", error_description="insufficient_scope", scope="orders:write"',
    );
    expect(await res.json()).toMatchObject({ error: "insufficient_scope" });
  });

  it("lets public routes through without a token, with identity when a valid one comes", async () => {
    const anonymous = await authz({ "x-forwarded-method": "GET", "x-forwarded-uri": "/public/logo.png" });
    expect(anonymous.status).toBe(200);
    expect(anonymous.headers.get("x-gatehouse-subject")).toBeNull();
    const known = await authz({
      authorization: `Bearer ${reader.token}`,
      "x-forwarded-method": "GET",
      "x-forwarded-uri": "/public/logo.png",
    });
    expect(known.headers.get("x-gatehouse-subject")).toBe("alice");
    // Other credentials (Basic, for the app itself) are not a bearer token to refuse: the route is public.
    const basic = await authz({
      authorization: "Basic dXNlcjpwYXNz",
      "x-forwarded-method": "GET",
      "x-forwarded-uri": "/public/logo.png",
    });
    expect(basic.status).toBe(200);
    expect(basic.headers.get("x-gatehouse-subject")).toBeNull();
  });

  it("refuses a path that normalization would change, and a request without the original URI", async () => {
    const sneaky = await authz({ "x-forwarded-method": "GET", "x-forwarded-uri": "/public/../orders" });
    expect(sneaky.status).toBe(400);
    expect(await sneaky.json()).toMatchObject({ error: "invalid_request" });
    // Letter case of percent-escapes does not count as a change.
    const escaped = await authz({
      authorization: `Bearer ${reader.token}`,
      "x-forwarded-method": "GET",
      "x-forwarded-uri": "/orders/a%3fb",
    });
    expect(escaped.status).toBe(200);
    const noUri = await authz({ authorization: `Bearer ${reader.token}` });
    expect(noUri.status).toBe(400);
    const put = await authz({ "x-forwarded-uri": "/orders" }, "PUT");
    expect(put.status).toBe(405);
  });

  it.each([
    ["/public/..;/admin", 400, "ambiguous_path"],
    ["/public/..\\admin", 400, "ambiguous_path"],
    ["/public/..%2fadmin", 400, "ambiguous_path"],
    ["/orders/a%2Fb", 400, "ambiguous_path"],
    ["/public/%00", 400, "invalid_path"],
    ["/public/a…(5000 bytes)", 414, "path_too_long"],
  ])("refuses the ambiguous path %s with no token: %i %s", async (label, status, code) => {
    const uri = longPath(label);
    const res = await authz({ "x-forwarded-method": "GET", "x-forwarded-uri": uri });
    expect(res.status).toBe(status);
    expect(await res.json()).toMatchObject({ error: code });
  });

  it.each(["/ORDERS", "/Orders/42", "/orders/", "/orders;jsessionid=x/42"])(
    "judges %s by the guarded /orders rule",
    async (uri) => {
      const headers = { "x-forwarded-method": "POST", "x-forwarded-uri": uri };
      expect((await authz({ ...headers, authorization: `Bearer ${reader.token}` })).status).toBe(403);
      expect((await authz({ ...headers, authorization: `Bearer ${writer.token}` })).status).toBe(200);
    },
  );

  it("applies grpc rules to a gRPC method path whatever the content type", async () => {
    const billing = await ts.issue("gina", ["billing:read"]);
    for (const type of [
      "application/json",
      "application/proto",
      "application/grpc-web+proto",
      "text/plain",
    ]) {
      const call = (token: string) =>
        authz({
          "content-type": type,
          "x-forwarded-method": "POST",
          "x-forwarded-uri": "/shop.v1.Orders/Get",
          authorization: `Bearer ${token}`,
        });
      expect((await call(billing.token)).status).toBe(403);
      expect((await call(reader.token)).status).toBe(200);
    }
  });

  it("matches gRPC requests against grpc rules and adds grpc-status to refusals", async () => {
    const grpcHeaders = { "content-type": "application/grpc", "x-forwarded-method": "POST" };
    const ok = await authz({
      ...grpcHeaders,
      authorization: `Bearer ${reader.token}`,
      "x-forwarded-uri": "/shop.v1.Orders/Get",
    });
    expect(ok.status).toBe(200);
    const denied = await authz({ ...grpcHeaders, "x-forwarded-uri": "/shop.v1.Orders/Get" });
    expect(denied.status).toBe(401);
    expect(denied.headers.get("grpc-status")).toBe("16");
  });

  it("refuses a token whose session was revoked, from the next request on", async () => {
    const victim = await ts.issue("carol", ["orders:read"]);
    const headers = {
      authorization: `Bearer ${victim.token}`,
      "x-forwarded-method": "GET",
      "x-forwarded-uri": "/orders",
    };
    expect((await authz(headers)).status).toBe(200);
    revocation.apply({
      type: "session_revoked",
      id: randomUUID(),
      at: Date.now(),
      until: Math.floor(Date.now() / 1000) + 3600,
      sid: victim.sessionId,
    });
    const res = await authz(headers);
    expect(res.status).toBe(401);
    expect(res.headers.get("www-authenticate")).toContain('error_description="session_revoked"');
  });

  it("counts decisions by reason and mode in /metrics", async () => {
    const text = await (await fetch(`http://127.0.0.1:${sidecar.controlPort}/metrics`)).text();
    expect(text).toMatch(/gatehouse_sidecar_decisions_total\{reason="ok",mode="forward_auth"[^}]*\} \d+/);
    expect(text).toMatch(/gatehouse_sidecar_decisions_total\{reason="missing_token",mode="forward_auth"/);
    expect(text).toMatch(/gatehouse_sidecar_decisions_total\{reason="session_revoked",mode="forward_auth"/);
    expect(text).toMatch(/gatehouse_sidecar_jwks_age_seconds\{[^}]*\} \d/);
    expect(text).toMatch(/gatehouse_sidecar_token_cache_hits_total\{[^}]*\} [1-9]/);
    expect(text).toMatch(/gatehouse_sidecar_revocation_stale\{[^}]*\} 0/);
    expect(text).toMatch(/gatehouse_sidecar_decision_duration_seconds_bucket/);
  });
});

describe("keys", () => {
  it("sees a rotated key: a token signed with a new kid triggers one refetch and verifies", async () => {
    const kid = await ts.rotateKey("ES256");
    const fresh = await ts.issue("dave", ["orders:read"]);
    expect(JSON.parse(Buffer.from(fresh.token.split(".")[0]!, "base64url").toString()).kid).toBe(kid);
    const res = await authz({
      authorization: `Bearer ${fresh.token}`,
      "x-forwarded-method": "GET",
      "x-forwarded-uri": "/orders",
    });
    expect(res.status).toBe(200);
    expect(sidecar.jwks.keys().map((k) => k.kid)).toContain(kid);
    // Tokens of the retiring key still verify: it stays published.
    const old = await authz({
      authorization: `Bearer ${reader.token}`,
      "x-forwarded-method": "GET",
      "x-forwarded-uri": "/orders",
    });
    expect(old.status).toBe(200);
  });
});

describe("gatehouse sidecar (the process)", () => {
  it("starts, becomes ready, verifies, and stops on SIGTERM", async () => {
    const child = spawn(process.execPath, ["bin/gatehouse.mjs", "sidecar"], {
      env: {
        ...process.env,
        GATEHOUSE_ISSUER: ISSUER,
        GATEHOUSE_AUDIENCES: "orders",
        GATEHOUSE_TOKEN_SERVICE_URL: ts.url,
        GATEHOUSE_PROXY_LISTEN: "127.0.0.1:0",
        GATEHOUSE_CONTROL_LISTEN: "127.0.0.1:0",
        GATEHOUSE_LOG_LEVEL: "info",
        GATEHOUSE_LOG_PRETTY: "false",
        GATEHOUSE_REVOCATION: "none",
        REDIS_URL: undefined,
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stdout.on("data", (d) => {
      out += d;
    });
    child.stderr.on("data", (d) => {
      out += d;
    });
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    try {
      await expect.poll(() => out.includes('"msg":"sidecar ready"'), { timeout: 20_000 }).toBeTruthy();
      const listening = JSON.parse(out.split("\n").find((l) => l.includes('"sidecar listening"'))!);
      const ready = await fetch(`http://127.0.0.1:${listening.controlPort}/readyz`);
      expect(ready.status).toBe(200);
      const res = await fetch(`http://127.0.0.1:${listening.controlPort}/authz`, {
        headers: { authorization: `Bearer ${reader.token}`, "x-forwarded-uri": "/orders" },
      });
      expect(res.status).toBe(200);
      child.kill("SIGTERM");
      expect(await exited).toBe(0);
      expect(out).toContain('"msg":"sidecar stopped"');
    } finally {
      child.kill("SIGKILL");
    }
  }, 40_000);
});

// Last: stops the token service.
describe("token service down", () => {
  it("keeps verifying with the cached keys and stays ready", async () => {
    await ts.service.shutdown();
    await expect(sidecar.jwks.refreshNow()).rejects.toThrow();
    const res = await authz({
      authorization: `Bearer ${writer.token}`,
      "x-forwarded-method": "POST",
      "x-forwarded-uri": "/orders",
    });
    expect(res.status).toBe(200);
    const ready = await fetch(`http://127.0.0.1:${sidecar.controlPort}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ ready: true, jwks: { stale: false } });
  });
});
