/**
 * Token exchange (RFC 8693) at `POST /oauth2/token`: driven by openid-client 6 for the exchanges
 * that succeed, and by hand-written form posts for every refusal, each asserting the RFC 8693
 * §2.2.2 `error` and our code leading `error_description`.
 */
import { decodeJwt } from "jose";
import * as oidc from "openid-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { basicAuthorization } from "../../services/token/clients/basic-credentials.ts";
import {
  ACCESS_TOKEN_TYPE,
  JWT_TOKEN_TYPE,
  TOKEN_EXCHANGE_GRANT_TYPE,
} from "../../services/token/flows/token-exchange-request.ts";
import { type OAuthTestService, startOAuthTestService } from "../support/oauth-service.ts";
import { grpcTokenClient } from "../support/token-clients.ts";

let t: OAuthTestService;
const BURST = 30;

beforeAll(async () => {
  t = await startOAuthTestService(
    [
      { id: "web", roles: ["issuer"], allowedClaims: ["plan", "may_act"] },
      {
        id: "svc-a",
        roles: ["service"],
        allowedAudiences: ["billing", "https://billing.example/api"],
        allowedScopes: ["orders:read", "billing:read"],
      },
      { id: "svc-b", roles: ["service"], allowedAudiences: ["ledger"], allowedScopes: ["billing:read"] },
      { id: "hasty", roles: ["service"] },
    ],
    // Per client: generous enough for svc-a over this whole file, and for hasty to run through.
    { rateLimitExchange: { ratePerSecond: 1, burst: BURST } },
  );
});
afterAll(() => t?.stop());

/** openid-client configured from our RFC 8414 metadata, as `id` with client_secret_basic. */
function discover(id: string): Promise<oidc.Configuration> {
  return oidc.discovery(new URL(t.issuer), id, undefined, oidc.ClientSecretBasic(t.creds[id]!.secret), {
    algorithm: "oauth2",
    execute: [oidc.allowInsecureRequests],
  });
}

/** A user's session started over RPC: its access and refresh tokens. */
async function login(subject: string, claims: Record<string, unknown> = {}) {
  const rpc = grpcTokenClient(t.service.grpcPort, t.creds.web);
  try {
    const issued = await rpc.issue({
      subject,
      audience: ["orders"],
      scopes: ["orders:read", "billing:read"],
      claims: claims as never,
    });
    return { accessToken: issued.accessToken, refreshToken: issued.refreshToken };
  } finally {
    rpc.close();
  }
}

interface Answer {
  status: number;
  headers: Headers;
  json: Record<string, unknown>;
}

/** A token-exchange form post as client `id`: the subject token is an access token unless told. */
async function exchange(id: string, params: Record<string, string>, secret = t.creds[id]!.secret) {
  const res = await fetch(`${t.issuer}/oauth2/token`, {
    method: "POST",
    headers: {
      "content-type": "application/x-www-form-urlencoded",
      authorization: basicAuthorization(id, secret),
    },
    body: new URLSearchParams({ grant_type: TOKEN_EXCHANGE_GRANT_TYPE, ...params }),
  });
  return { status: res.status, headers: res.headers, json: (await res.json()) as Record<string, unknown> };
}

const subject = (subject_token: string, more: Record<string, string> = {}) => ({
  subject_token,
  subject_token_type: ACCESS_TOKEN_TYPE,
  audience: "billing",
  ...more,
});

/** Asserts an OAuth error answer: status, `error`, and our code leading `error_description`. */
function expectError(answer: Answer, status: number, error: string, code: string): void {
  expect({ status: answer.status, error: answer.json.error }).toEqual({ status, error });
  expect(answer.json.error_description).toMatch(new RegExp(`^${code}: `));
  expect(answer.headers.get("cache-control")).toBe("no-store");
}

describe("token exchange through openid-client", () => {
  it("is advertised in the RFC 8414 metadata", async () => {
    const config = await discover("svc-a");
    expect(config.serverMetadata().grant_types_supported).toContain(TOKEN_EXCHANGE_GRANT_TYPE);
  });

  it("answers per RFC 8693 §2.2.1 and nests act over a chain of two exchanges", async () => {
    const user = await login("alice", { plan: "gold" });
    const original = decodeJwt(user.accessToken);

    const a = await oidc.genericGrantRequest(await discover("svc-a"), TOKEN_EXCHANGE_GRANT_TYPE, {
      subject_token: user.accessToken,
      subject_token_type: ACCESS_TOKEN_TYPE,
      audience: "billing",
      scope: "billing:read",
    });
    expect(a).toMatchObject({
      issued_token_type: ACCESS_TOKEN_TYPE,
      token_type: "bearer",
      scope: "billing:read",
    });
    expect(a.expires_in).toBeGreaterThan(590);
    expect(a.refresh_token).toBeUndefined();
    expect(decodeJwt(a.access_token)).toMatchObject({
      iss: t.issuer,
      sub: "alice",
      sid: original.sid,
      sv: original.sv,
      aud: "billing",
      client_id: "svc-a",
      scope: "billing:read",
      act: { sub: "svc-a" },
    });

    // svc-b acts on the token svc-a got, the subject token type named as a JWT this time.
    const b = await oidc.genericGrantRequest(await discover("svc-b"), TOKEN_EXCHANGE_GRANT_TYPE, {
      subject_token: a.access_token,
      subject_token_type: JWT_TOKEN_TYPE,
      resource: "ledger",
    });
    expect(b).toMatchObject({ issued_token_type: ACCESS_TOKEN_TYPE, scope: "billing:read" });
    expect(decodeJwt(b.access_token)).toMatchObject({
      sub: "alice",
      sid: original.sid,
      aud: "ledger",
      client_id: "svc-b",
      act: { sub: "svc-b", act: { sub: "svc-a" } },
    });

    const audit = await t.tdb.db.prisma.auditEvent.findMany({
      where: { action: "access_token.exchange", subject: "alice" },
    });
    expect(audit.map((e) => e.clientId).sort()).toEqual(["svc-a", "svc-b"]);
  });

  it("reports a refusal to the library as the RFC 8693 error", async () => {
    const user = await login("bob");
    const err = await oidc
      .genericGrantRequest(
        await discover("svc-a"),
        TOKEN_EXCHANGE_GRANT_TYPE,
        subject(user.accessToken, {
          audience: "ledger",
        }),
      )
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(oidc.ResponseBodyError);
    expect(err).toMatchObject({ error: "invalid_target", status: 400 });
  });
});

describe("token exchange refusals (RFC 8693 §2.2.2)", () => {
  it("invalid_request: no subject_token, no subject_token_type, an actor_token without its type", async () => {
    const user = await login("carol");
    expectError(
      await exchange("svc-a", { subject_token_type: ACCESS_TOKEN_TYPE }),
      400,
      "invalid_request",
      "invalid_request",
    );
    expectError(
      await exchange("svc-a", { subject_token: user.accessToken }),
      400,
      "invalid_request",
      "invalid_request",
    );
    expectError(
      await exchange("svc-a", subject(user.accessToken, { actor_token: user.accessToken })),
      400,
      "invalid_request",
      "invalid_request",
    );
  });

  it("invalid_request: a subject_token_type or requested_token_type we do not take", async () => {
    const user = await login("dan");
    for (const params of [
      { subject_token_type: "urn:ietf:params:oauth:token-type:refresh_token" },
      { requested_token_type: "urn:ietf:params:oauth:token-type:id_token" },
    ] as Record<string, string>[]) {
      expectError(
        await exchange("svc-a", subject(user.accessToken, params)),
        400,
        "invalid_request",
        "unsupported_token_type",
      );
    }
  });

  it("invalid_request: a subject token that is not ours, expired, or of a revoked session", async () => {
    expectError(await exchange("svc-a", subject("not-a-jwt")), 400, "invalid_request", "invalid_grant");

    const revoked = await login("erin");
    const web = await discover("web");
    await oidc.tokenRevocation(web, revoked.refreshToken, { token_type_hint: "refresh_token" });
    expectError(
      await exchange("svc-a", subject(revoked.accessToken)),
      400,
      "invalid_request",
      "session_revoked",
    );

    const expiring = await login("fay");
    t.clock.advance(601_000);
    expectError(
      await exchange("svc-a", subject(expiring.accessToken)),
      400,
      "invalid_request",
      "token_expired",
    );
  });

  it("invalid_request: an actor the subject token's may_act does not name", async () => {
    const user = await login("gus", { may_act: { sub: "svc-b" } });
    expectError(
      await exchange("svc-a", subject(user.accessToken)),
      400,
      "invalid_request",
      "actor_not_allowed",
    );
  });

  it("invalid_target: an audience or resource the client may not request, or none", async () => {
    const user = await login("hal");
    expectError(
      await exchange("svc-a", subject(user.accessToken, { audience: "ledger" })),
      400,
      "invalid_target",
      "audience_not_allowed",
    );
    const { audience: _, ...noAudience } = subject(user.accessToken);
    expectError(
      await exchange("svc-a", { ...noAudience, resource: "https://ledger.example/api" }),
      400,
      "invalid_target",
      "audience_not_allowed",
    );
    // No audience at all is a request that is not valid, not a target refused.
    expectError(await exchange("svc-a", noAudience), 400, "invalid_request", "invalid_request");
  });

  it("invalid_scope: a scope beyond the subject token's or the client's", async () => {
    const user = await login("ivy");
    expectError(
      await exchange("svc-a", subject(user.accessToken, { scope: "orders:write" })),
      400,
      "invalid_scope",
      "scope_not_allowed",
    );
  });

  it("unauthorized_client: an ISSUER client, whose roles do not include Exchange", async () => {
    const user = await login("jay");
    expectError(
      await exchange("web", subject(user.accessToken)),
      400,
      "unauthorized_client",
      "unauthorized_client",
    );
  });

  it("invalid_client: a wrong secret is a 401 with WWW-Authenticate, as for every grant", async () => {
    const answer = await exchange("svc-a", subject("not-a-jwt"), "wrong-secret");
    expectError(answer, 401, "invalid_client", "invalid_client");
    expect(answer.headers.get("www-authenticate")).toBe('Basic realm="gatehouse"');
  });

  it("temporarily_unavailable: the client's Exchange rate limit, with retry-after", async () => {
    const answers: Answer[] = [];
    for (let i = 0; i <= BURST; i++) answers.push(await exchange("hasty", subject("not-a-jwt")));
    expect(answers.slice(0, BURST).map((a) => a.json.error)).toEqual(Array(BURST).fill("invalid_request"));
    expectError(answers[BURST]!, 429, "temporarily_unavailable", "rate_limited");
    expect(Number(answers[BURST]!.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
  });

  it("never logs a subject token, an actor token or the form body", async () => {
    const user = await login("kim", { may_act: { sub: "svc-b" } });
    const own = await oidc.clientCredentialsGrant(await discover("svc-a"), { audience: "billing" });
    // svc-a acting with its own token against kim's may_act: refused, audited and logged, and
    // neither may carry the tokens it was about.
    const refused = await exchange(
      "svc-a",
      subject(user.accessToken, { actor_token: own.access_token, actor_token_type: ACCESS_TOKEN_TYPE }),
    );
    expectError(refused, 400, "invalid_request", "actor_not_allowed");
    const text = t.logLines.join("");
    expect(text).not.toContain(user.accessToken);
    expect(text).not.toContain(own.access_token);
    expect(text).not.toContain("subject_token=");
    for (const { secret } of Object.values(t.creds)) expect(text).not.toContain(secret);
  });

  it("counts exchanges in gatehouse_rpc_* under the Exchange method, protocol oauth2", async () => {
    const text = await (await fetch(`http://127.0.0.1:${t.service.adminPort}/metrics`)).text();
    expect(text).toMatch(
      /gatehouse_rpc_duration_seconds_count\{[^}]*method="Exchange",protocol="oauth2",code="OK"[,}]/,
    );
    expect(text).toMatch(/gatehouse_rpc_errors_total\{[^}]*method="Exchange",reason="token_expired"[,}]/);
  });
});
