import type http from "node:http";
import { describe, expect, it } from "vitest";
import { ERROR_CODES } from "../../services/shared/errors/codes.ts";
import { clientAuthentication } from "../../services/token/oauth/client-authentication.ts";
import { parseForm } from "../../services/token/oauth/form-body.ts";
import { grantFor, SUPPORTED_GRANT_TYPES } from "../../services/token/oauth/grants/index.ts";
import {
  introspectionJwtClaims,
  rfc7662Response,
  wantsIntrospectionJwt,
} from "../../services/token/oauth/introspection-response.ts";
import { oauthErrorOf } from "../../services/token/oauth/oauth-errors.ts";
import { authorizationServerMetadata } from "../../services/token/oauth/server-metadata.ts";

const form = (text: string) => parseForm(new TextEncoder().encode(text));
const codeOf = (fn: () => unknown) => {
  try {
    fn();
  } catch (err) {
    return (err as { code?: string }).code;
  }
  return "no error";
};

describe("form bodies", () => {
  it.each([
    ["grant_type=client_credentials&grant_type=refresh_token", "invalid_request"],
    ["scope=a&scope=b", "invalid_request"],
    ["client_secret=x&client_secret=y", "invalid_request"],
    ["scope=%FF", "invalid_request"],
    ["scope=%C3", "invalid_request"],
    ["resource=https://a&resource=https://b", "no error"],
    ["audience=a&audience=b", "no error"],
    ["scope=a+b&token=x%2By", "no error"],
  ])("%s → %s", (text, expected) => {
    expect(codeOf(() => form(text))).toBe(expected);
  });

  it("refuses a body that is not UTF-8", () => {
    expect(codeOf(() => parseForm(new Uint8Array([0x73, 0x3d, 0xff])))).toBe("invalid_request");
  });

  it("reads + as space and keeps %2B, treats empty values as absent", () => {
    const f = form("scope=a+b&token=x%2By&client_id=&resource=");
    expect(f.get("scope")).toBe("a b");
    expect(f.get("token")).toBe("x+y");
    expect(f.get("client_id")).toBeUndefined();
    expect(f.has("resource")).toBe(false);
  });
});

describe("client authentication methods", () => {
  const req = (authorization?: string) =>
    ({ headers: authorization === undefined ? {} : { authorization } }) as http.IncomingMessage;
  const basic = (raw: string) => `Basic ${Buffer.from(raw).toString("base64")}`;

  it("decodes form-urlencoded id and secret inside Basic (RFC 6749 §2.3.1)", () => {
    expect(clientAuthentication(req(basic("my%20app:s%3Acret%2B")), form(""))).toEqual({
      method: "client_secret_basic",
      credentials: { clientId: "my app", secret: "s:cret+" },
    });
  });

  it("reads client_secret_post, and none when nothing is sent", () => {
    expect(clientAuthentication(req(), form("client_id=a&client_secret=b"))).toEqual({
      method: "client_secret_post",
      credentials: { clientId: "a", secret: "b" },
    });
    expect(clientAuthentication(req(), form("client_id=a"))).toEqual({ method: "none" });
  });

  it.each([
    [basic("a:b"), "client_secret=b", "invalid_request"],
    [basic("a:b"), "client_id=other", "invalid_request"],
    [basic("a:b"), "client_id=a", "no error"],
    ["Bearer x", "", "invalid_client"],
    [basic("no-colon"), "", "invalid_client"],
  ])("%s with %s → %s", (header, body, expected) => {
    expect(codeOf(() => clientAuthentication(req(header), form(body)))).toBe(expected);
  });
});

describe("OAuth error mapping", () => {
  it.each([
    ["invalid_request", "invalid_request", 400],
    ["invalid_client", "invalid_client", 401],
    ["unauthorized_client", "unauthorized_client", 400],
    ["tenant_not_allowed", "unauthorized_client", 400],
    ["audience_not_allowed", "invalid_target", 400],
    ["scope_not_allowed", "invalid_scope", 400],
    ["invalid_grant", "invalid_grant", 400],
    ["refresh_token_reused", "invalid_grant", 400],
    ["session_revoked", "invalid_grant", 400],
    ["token_expired", "invalid_grant", 400],
    ["unsupported_grant_type", "unsupported_grant_type", 400],
    ["unsupported_token_type", "unsupported_token_type", 400],
    ["rate_limited", "temporarily_unavailable", 429],
    ["unavailable", "temporarily_unavailable", 503],
    ["internal", "server_error", 500],
  ] as const)("%s → %s (%i)", (code, error, status) => {
    expect(oauthErrorOf(code)).toEqual({ error, status });
  });

  it("maps every code to an RFC error name", () => {
    const names = new Set(ERROR_CODES.map((c) => oauthErrorOf(c).error));
    expect([...names].every((n) => /^[a-z_]+$/.test(n))).toBe(true);
  });
});

describe("grant table", () => {
  it("serves exactly the grants it lists, and no inherited names", () => {
    expect(SUPPORTED_GRANT_TYPES).toEqual([
      "client_credentials",
      "refresh_token",
      "urn:ietf:params:oauth:grant-type:token-exchange",
    ]);
    for (const name of ["constructor", "__proto__", "toString", "hasOwnProperty"])
      expect(grantFor(name)).toBeUndefined();
    expect(grantFor("urn:ietf:params:oauth:grant-type:token-exchange")?.method).toBe("Exchange");
  });
});

describe("introspection answers", () => {
  const active = {
    active: true,
    subject: "u1",
    clientId: "web",
    scopes: ["a", "b"],
    audience: ["orders"],
    sessionId: "s1",
    sessionVersion: 2,
    tokenType: "Bearer",
    issuedAt: { seconds: 1000n },
    expiresAt: { seconds: 1600n },
    jti: "j1",
  };

  it("speaks RFC 7662 members with numeric times and a space-separated scope", () => {
    expect(rfc7662Response(active, "https://auth.test")).toEqual({
      active: true,
      scope: "a b",
      client_id: "web",
      sub: "u1",
      aud: "orders",
      iss: "https://auth.test",
      exp: 1600,
      iat: 1000,
      nbf: 1000,
      token_type: "Bearer",
      jti: "j1",
      sid: "s1",
    });
    expect(
      rfc7662Response({ ...active, audience: ["a", "b"], scopes: [], sessionId: "", jti: "" }, "i"),
    ).not.toHaveProperty("scope");
  });

  it("is exactly {active: false} for anything inactive, whatever else the flow said", () => {
    expect(rfc7662Response({ ...active, active: false }, "i")).toEqual({ active: false });
  });

  it("wraps the answer for RFC 9701 with iss, aud and iat", () => {
    expect(introspectionJwtClaims({ active: false }, "https://auth.test", "rs", 5_500)).toEqual({
      iss: "https://auth.test",
      aud: "rs",
      iat: 5,
      token_introspection: { active: false },
    });
  });

  it.each([
    ["application/token-introspection+jwt", true],
    ["application/json, application/token-introspection+jwt;q=0.9", true],
    ["application/json", false],
    ["application/token-introspection+jwtx", false],
    [undefined, false],
  ])("accept %s → JWT %s", (accept, expected) => {
    expect(wantsIntrospectionJwt(accept)).toBe(expected);
  });
});

describe("RFC 8414 metadata", () => {
  it("names every endpoint under the issuer and a non-empty response_types_supported", () => {
    const meta = authorizationServerMetadata("https://auth.example.com/");
    expect(meta).toMatchObject({
      issuer: "https://auth.example.com/",
      token_endpoint: "https://auth.example.com/oauth2/token",
      introspection_endpoint: "https://auth.example.com/oauth2/introspect",
      revocation_endpoint: "https://auth.example.com/oauth2/revoke",
      response_types_supported: ["none"],
    });
    expect(meta).not.toHaveProperty("authorization_endpoint");
  });
});
