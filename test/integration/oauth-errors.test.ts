/**
 * Every error answer of the OAuth endpoints, by hand-written requests (a client library would
 * refuse to send most of them): RFC 6749 §5.2 at the token endpoint, RFC 7009 §2.2.1 at revocation,
 * RFC 7662 at introspection, and what the HTTP layer refuses before any of them run.
 */
import { generateKeyPairSync, randomUUID, sign } from "node:crypto";
import net from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { basicAuthorization } from "../../services/token/clients/basic-credentials.ts";
import { type OAuthTestService, startOAuthTestService } from "../support/oauth-service.ts";
import { grpcTokenClient } from "../support/token-clients.ts";

let t: OAuthTestService;

beforeAll(async () => {
  t = await startOAuthTestService(
    [
      { id: "web", roles: ["issuer"] },
      { id: "web2", roles: ["issuer"] },
      { id: "svc", roles: ["service"], allowedAudiences: ["orders", "https://api.example/orders"] },
      { id: "intro", roles: ["introspector"] },
      { id: "burst", roles: ["introspector"] },
      { id: "gone", roles: ["service"], disabledAt: new Date() },
    ],
    { rateLimitIntrospect: { ratePerSecond: 1, burst: 20 } },
  );
});
afterAll(() => t?.stop());

interface Answer {
  status: number;
  headers: Headers;
  json: Record<string, unknown>;
}

type Auth = { basic: string } | { post: string } | { header: string } | "none";

/** A form post to `path` as client `id` (Basic by default). */
async function post(
  path: string,
  form: Record<string, string> | string,
  auth: Auth = { basic: "svc" },
  headers: Record<string, string> = {},
): Promise<Answer> {
  const body = typeof form === "string" ? new URLSearchParams(form) : new URLSearchParams(form);
  const h: Record<string, string> = { "content-type": "application/x-www-form-urlencoded", ...headers };
  if (auth !== "none" && "basic" in auth)
    h.authorization = basicAuthorization(auth.basic, t.creds[auth.basic]!.secret);
  if (auth !== "none" && "header" in auth) h.authorization = auth.header;
  if (auth !== "none" && "post" in auth) {
    body.set("client_id", auth.post);
    body.set("client_secret", t.creds[auth.post]!.secret);
  }
  const res = await fetch(`${t.issuer}${path}`, { method: "POST", headers: h, body: body.toString() });
  const text = await res.text();
  return {
    status: res.status,
    headers: res.headers,
    json: text === "" ? {} : (JSON.parse(text) as Record<string, unknown>),
  };
}

const token = (form: Record<string, string> | string, auth?: Auth, headers?: Record<string, string>) =>
  post("/oauth2/token", form, auth, headers);

/** Asserts an OAuth error answer: status, `error`, and our code leading `error_description`. */
function expectError(answer: Answer, status: number, error: string, code: string): void {
  expect({ status: answer.status, error: answer.json.error }).toEqual({ status, error });
  expect(answer.json.error_description).toMatch(new RegExp(`^${code}: `));
  expect(answer.headers.get("cache-control")).toBe("no-store");
}

async function startSession(subject: string, client = "web"): Promise<string> {
  const rpc = grpcTokenClient(t.service.grpcPort, t.creds[client]);
  try {
    return (await rpc.issue({ subject, audience: ["orders"], scopes: ["orders:read"] })).refreshToken;
  } finally {
    rpc.close();
  }
}

describe("token endpoint errors (RFC 6749 §5.2)", () => {
  it("invalid_request: grant_type missing", async () => {
    expectError(await token({ scope: "orders:read" }), 400, "invalid_request", "invalid_request");
  });

  it("invalid_request: a repeated parameter", async () => {
    expectError(
      await token("grant_type=client_credentials&grant_type=client_credentials"),
      400,
      "invalid_request",
      "invalid_request",
    );
    expectError(
      await token("grant_type=client_credentials&scope=a&scope=b"),
      400,
      "invalid_request",
      "invalid_request",
    );
  });

  it("invalid_request: two client authentication methods at once", async () => {
    const both = await token({ grant_type: "client_credentials", client_secret: t.creds.svc!.secret });
    expectError(both, 400, "invalid_request", "invalid_request");
  });

  it("invalid_request: client_id in the body naming another client than the Basic header", async () => {
    expectError(
      await token({ grant_type: "client_credentials", client_id: "web" }),
      400,
      "invalid_request",
      "invalid_request",
    );
  });

  it("invalid_request: refresh_token missing", async () => {
    expectError(
      await token({ grant_type: "refresh_token" }, { basic: "web" }),
      400,
      "invalid_request",
      "invalid_request",
    );
  });

  it("invalid_request: audience and resource together", async () => {
    const both = await token({
      grant_type: "client_credentials",
      audience: "orders",
      resource: "https://api.example/orders",
    });
    expectError(both, 400, "invalid_request", "invalid_request");
  });

  it.each([
    ["no credentials", "none" as const],
    ["a wrong Basic secret", { header: basicAuthorization("svc", "gths_wrong") }],
    ["an unknown client", { header: basicAuthorization("stranger", "gths_wrong") }],
    ["a disabled client", { basic: "gone" }],
    ["a Basic header of another scheme", { header: "Bearer abc" }],
    ["a client id with a NUL (was a 500)", { header: basicAuthorization("s\0vc", "gths_wrong") }],
    ["a client id of 9,000 characters", { header: basicAuthorization("a".repeat(9000), "gths_wrong") }],
  ])("invalid_client (401, WWW-Authenticate): %s", async (_label, auth) => {
    const answer = await token({ grant_type: "client_credentials" }, auth);
    expectError(answer, 401, "invalid_client", "invalid_client");
    expect(answer.headers.get("www-authenticate")).toBe('Basic realm="gatehouse"');
  });

  it("invalid_client (401): a wrong client_secret_post secret", async () => {
    const answer = await token(
      { grant_type: "client_credentials", client_id: "svc", client_secret: "gths_wrong" },
      "none",
    );
    expectError(answer, 401, "invalid_client", "invalid_client");
  });

  it("invalid_client (401): a client_secret_post id with a NUL or a control character (was a 500)", async () => {
    for (const clientId of ["s\0vc", "s\nvc"]) {
      const answer = await token(
        { grant_type: "client_credentials", client_id: clientId, client_secret: "x" },
        "none",
      );
      expectError(answer, 401, "invalid_client", "invalid_client");
    }
  });

  it("invalid_client (401): a client_id without a secret (we have no public clients)", async () => {
    const answer = await token({ grant_type: "client_credentials", client_id: "svc" }, "none");
    expectError(answer, 401, "invalid_client", "invalid_client");
  });

  it("invalid_grant: unknown, garbled and other clients' refresh tokens", async () => {
    expectError(
      await token({ grant_type: "refresh_token", refresh_token: `gthr_${"C".repeat(43)}` }, { basic: "web" }),
      400,
      "invalid_grant",
      "invalid_grant",
    );
    expectError(
      await token({ grant_type: "refresh_token", refresh_token: "not-ours" }, { basic: "web" }),
      400,
      "invalid_grant",
      "invalid_grant",
    );
    const foreign = await startSession("gina", "web2");
    expectError(
      await token({ grant_type: "refresh_token", refresh_token: foreign }, { basic: "web" }),
      400,
      "invalid_grant",
      "invalid_grant",
    );
  });

  it("invalid_grant: a reused refresh token, which revokes the session", async () => {
    const first = await startSession("hank");
    expect((await token({ grant_type: "refresh_token", refresh_token: first }, { post: "web" })).status).toBe(
      200,
    );
    t.clock.advance(11_000);
    expectError(
      await token({ grant_type: "refresh_token", refresh_token: first }, { post: "web" }),
      400,
      "invalid_grant",
      "refresh_token_reused",
    );
    const audit = await t.tdb.db.prisma.auditEvent.findMany({ where: { action: { contains: "reuse" } } });
    expect(audit.length).toBeGreaterThan(0);
  });

  it("unauthorized_client: a client whose roles do not include the grant's method", async () => {
    expectError(
      await token({ grant_type: "client_credentials" }, { basic: "web" }),
      400,
      "unauthorized_client",
      "unauthorized_client",
    );
  });

  it.each([
    "password",
    "authorization_code",
    "urn:ietf:params:oauth:grant-type:jwt-bearer",
    "constructor",
    "__proto__",
  ])("unsupported_grant_type: %s", async (grantType) => {
    expectError(
      await token({ grant_type: grantType }),
      400,
      "unsupported_grant_type",
      "unsupported_grant_type",
    );
  });

  it("invalid_scope: a scope the client may not request, or narrowing outside the session", async () => {
    expectError(
      await token({ grant_type: "client_credentials", scope: "admin:all" }),
      400,
      "invalid_scope",
      "scope_not_allowed",
    );
    const first = await startSession("ivy");
    const wider = await token(
      { grant_type: "refresh_token", refresh_token: first, scope: "orders:write" },
      { basic: "web" },
    );
    expectError(wider, 400, "invalid_scope", "scope_not_allowed");
  });

  it("invalid_target: an audience or resource the client may not address, or a malformed resource", async () => {
    expectError(
      await token({ grant_type: "client_credentials", audience: "payroll" }),
      400,
      "invalid_target",
      "audience_not_allowed",
    );
    expectError(
      await token({ grant_type: "client_credentials", resource: "https://api.example/payroll" }),
      400,
      "invalid_target",
      "audience_not_allowed",
    );
    expectError(
      await token({ grant_type: "client_credentials", resource: "orders" }),
      400,
      "invalid_target",
      "audience_not_allowed",
    );
    expectError(
      await token({ grant_type: "client_credentials", resource: "https://api.example/orders#x" }),
      400,
      "invalid_target",
      "audience_not_allowed",
    );
    const first = await startSession("jack");
    const moved = await token(
      { grant_type: "refresh_token", refresh_token: first, resource: "https://api.example/orders" },
      { basic: "web" },
    );
    expectError(moved, 400, "invalid_target", "audience_not_allowed");
  });
});

describe("what the HTTP layer refuses", () => {
  it.each(["/oauth2/token", "/oauth2/introspect", "/oauth2/revoke"])(
    "GET %s: 405, POST only",
    async (path) => {
      const res = await fetch(`${t.issuer}${path}?grant_type=client_credentials`);
      expect(res.status).toBe(405);
      expect(res.headers.get("allow")).toBe("POST");
    },
  );

  it.each([
    ["application/json", JSON.stringify({ grant_type: "client_credentials" })],
    ["text/plain", "grant_type=client_credentials"],
    ["multipart/form-data; boundary=x", "--x--"],
  ])("a %s body: invalid_request", async (type, body) => {
    const res = await fetch(`${t.issuer}/oauth2/token`, {
      method: "POST",
      headers: { "content-type": type, authorization: basicAuthorization("svc", t.creds.svc!.secret) },
      body,
    });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ error: "invalid_request" });
  });

  it("a body over the limit: invalid_request, whether declared or streamed", async () => {
    const big = `grant_type=client_credentials&scope=${"a".repeat(20_000)}`;
    expectError(await token(big), 400, "invalid_request", "invalid_request");
  });

  it("a body declared over the limit: refused unread, and the connection closed", async () => {
    const { port } = new URL(t.issuer);
    const answer = await new Promise<string>((resolve, reject) => {
      const socket = net.connect(Number(port), "127.0.0.1");
      let text = "";
      socket.on("data", (d) => {
        text += d.toString();
      });
      socket.on("close", () => resolve(text));
      socket.on("error", reject);
      // Keep-alive asked for, 10 MB announced, a few bytes sent: the server must not wait for the rest.
      socket.write(
        "POST /oauth2/token HTTP/1.1\r\nhost: x\r\nconnection: keep-alive\r\n" +
          "content-type: application/x-www-form-urlencoded\r\ncontent-length: 10000000\r\n\r\ngrant_type=",
      );
    });
    expect(answer).toMatch(/^HTTP\/1\.1 400 /);
    expect(answer.toLowerCase()).toContain("connection: close");
    expect(answer).toContain('"error":"invalid_request"');
  });

  it("a compressed body: invalid_request", async () => {
    expectError(
      await token({ grant_type: "client_credentials" }, { basic: "svc" }, { "content-encoding": "gzip" }),
      400,
      "invalid_request",
      "invalid_request",
    );
  });

  it("invalid UTF-8 in a parameter: invalid_request", async () => {
    expectError(
      await token("grant_type=client_credentials&scope=%FF"),
      400,
      "invalid_request",
      "invalid_request",
    );
  });
});

describe("introspection errors (RFC 7662)", () => {
  const introspect = (form: Record<string, string> | string, auth: Auth = { basic: "intro" }) =>
    post("/oauth2/introspect", form, auth);

  it("401 invalid_client for missing or wrong credentials (§2.3)", async () => {
    const answer = await introspect({ token: "x" }, "none");
    expectError(answer, 401, "invalid_client", "invalid_client");
    expect(answer.headers.get("www-authenticate")).toMatch(/^Basic /);
    expectError(
      await introspect({ token: "x" }, { header: basicAuthorization("intro", "gths_wrong") }),
      401,
      "invalid_client",
      "invalid_client",
    );
  });

  it("unauthorized_client for a client without the introspector role", async () => {
    expectError(
      await introspect({ token: "x" }, { basic: "svc" }),
      400,
      "unauthorized_client",
      "unauthorized_client",
    );
  });

  it("invalid_request for a missing or repeated token", async () => {
    expectError(await introspect({}), 400, "invalid_request", "invalid_request");
    expectError(await introspect("token=a&token=b"), 400, "invalid_request", "invalid_request");
  });

  it("exactly {active: false} for expired, revoked, foreign and garbled tokens (§2.2)", async () => {
    const svc = await token({ grant_type: "client_credentials", audience: "orders" });
    const serviceToken = svc.json.access_token as string;
    const revoked = await post("/oauth2/revoke", { token: serviceToken });
    expect(revoked.status).toBe(200);
    const foreign = foreignToken(t.issuer);
    const expiring = (await token({ grant_type: "client_credentials", audience: "orders" })).json
      .access_token as string;
    t.clock.advance(601_000);
    for (const tok of [serviceToken, foreign, expiring, "x".repeat(5000), "a.b.c"]) {
      const answer = await introspect({ token: tok });
      expect(answer.status).toBe(200);
      expect(answer.json).toEqual({ active: false });
    }
  });

  it("429 temporarily_unavailable with retry-after over the client's rate limit", async () => {
    const answers = [];
    for (let i = 0; i < 25; i++) answers.push(await introspect({ token: "x" }, { basic: "burst" }));
    const refused = answers.find((a) => a.status === 429);
    expect(refused).toBeDefined();
    expectError(refused!, 429, "temporarily_unavailable", "rate_limited");
    expect(Number(refused!.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
  });
});

describe("revocation errors (RFC 7009 §2.2.1)", () => {
  const revoke = (form: Record<string, string> | string, auth: Auth = { basic: "svc" }) =>
    post("/oauth2/revoke", form, auth);

  it("invalid_request for a missing or repeated token", async () => {
    expectError(await revoke({}), 400, "invalid_request", "invalid_request");
    expectError(await revoke("token=a&token=b"), 400, "invalid_request", "invalid_request");
  });

  it("401 invalid_client for missing or wrong credentials", async () => {
    expectError(await revoke({ token: "x" }, "none"), 401, "invalid_client", "invalid_client");
    expectError(
      await revoke({ token: "x" }, { header: basicAuthorization("svc", "gths_wrong") }),
      401,
      "invalid_client",
      "invalid_client",
    );
  });

  it("unsupported_token_type for a token_type_hint we issue no tokens of", async () => {
    expectError(
      await revoke({ token: "x", token_type_hint: "saml_assertion" }),
      400,
      "unsupported_token_type",
      "unsupported_token_type",
    );
  });

  it("200 and an empty body for a token that is unknown", async () => {
    const answer = await revoke({ token: `gthr_${"D".repeat(43)}`, token_type_hint: "refresh_token" });
    expect(answer.status).toBe(200);
    expect(answer.json).toEqual({});
  });
});

describe("bookkeeping shared with the RPCs", () => {
  it("counts OAuth requests in gatehouse_rpc_* under the TokenService method, protocol oauth2", async () => {
    await token({ grant_type: "client_credentials", audience: "orders" });
    await token({ grant_type: "refresh_token", refresh_token: "garbled" }, { basic: "web" });
    await token({ grant_type: "password" });
    const text = await (await fetch(`http://127.0.0.1:${t.service.adminPort}/metrics`)).text();
    expect(text).toMatch(
      /gatehouse_rpc_duration_seconds_count\{[^}]*method="IssueServiceToken",protocol="oauth2",code="OK"[,}]/,
    );
    expect(text).toMatch(/gatehouse_rpc_errors_total\{[^}]*method="Refresh",reason="invalid_grant"[,}]/);
    expect(text).toMatch(
      /gatehouse_rpc_errors_total\{[^}]*method="Token",reason="unsupported_grant_type"[,}]/,
    );
  });
});

/** An at+jwt with our issuer, signed by a key that is not ours. */
function foreignToken(issuer: string): string {
  const { privateKey } = generateKeyPairSync("ed25519");
  const enc = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url");
  const now = Math.floor(t.clock.now() / 1000);
  const input = `${enc({ alg: "EdDSA", typ: "at+jwt", kid: "stranger" })}.${enc({
    iss: issuer,
    sub: "svc",
    aud: "orders",
    client_id: "svc",
    jti: randomUUID(),
    iat: now,
    exp: now + 600,
  })}`;
  return `${input}.${sign(null, Buffer.from(input), privateKey).toString("base64url")}`;
}
