/**
 * The OAuth 2.0 HTTP surface driven by an off-the-shelf client library (openid-client 6), as a
 * gateway or service would use it: discovery, the client_credentials and refresh_token grants,
 * introspection (JSON and RFC 9701 JWT) and revocation, with both client authentication methods.
 * Token exchange has its own file, oauth-token-exchange.test.ts.
 */
import { decodeJwt, decodeProtectedHeader } from "jose";
import * as oidc from "openid-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fingerprint } from "../../services/shared/logging/index.ts";
import { type OAuthTestService, startOAuthTestService } from "../support/oauth-service.ts";
import { grpcTokenClient } from "../support/token-clients.ts";

let t: OAuthTestService;

beforeAll(async () => {
  t = await startOAuthTestService([
    { id: "web", roles: ["issuer"] },
    { id: "svc", roles: ["service"], allowedAudiences: ["orders", "https://api.example/billing"] },
    { id: "intro", roles: ["introspector"] },
    { id: "ops", roles: ["revoker"] },
  ]);
});
afterAll(() => t?.stop());

/** openid-client configured from our RFC 8414 metadata, as `id`, with Basic or post authentication. */
function discover(
  id: string,
  method: "basic" | "post" = "basic",
  metadata?: Partial<oidc.ClientMetadata>,
): Promise<oidc.Configuration> {
  const { secret } = t.creds[id]!;
  const auth = method === "basic" ? oidc.ClientSecretBasic(secret) : oidc.ClientSecretPost(secret);
  return oidc.discovery(new URL(t.issuer), id, metadata, auth, {
    algorithm: "oauth2",
    execute: [oidc.allowInsecureRequests],
  });
}

/** A session started over RPC (Issue has no OAuth grant): its first refresh token. */
async function startSession(subject: string, scopes = ["orders:read", "orders:write"]): Promise<string> {
  const rpc = grpcTokenClient(t.service.grpcPort, t.creds.web);
  try {
    const issued = await rpc.issue({ subject, audience: ["orders"], scopes });
    return issued.refreshToken;
  } finally {
    rpc.close();
  }
}

describe("OAuth endpoints through openid-client", () => {
  it("discovers the endpoints and methods from RFC 8414 metadata", async () => {
    const config = await discover("svc");
    const meta = config.serverMetadata();
    expect(meta).toMatchObject({
      issuer: t.issuer,
      token_endpoint: `${t.issuer}/oauth2/token`,
      introspection_endpoint: `${t.issuer}/oauth2/introspect`,
      revocation_endpoint: `${t.issuer}/oauth2/revoke`,
      jwks_uri: `${t.issuer}/.well-known/jwks.json`,
      grant_types_supported: [
        "client_credentials",
        "refresh_token",
        "urn:ietf:params:oauth:grant-type:token-exchange",
      ],
      response_types_supported: ["none"],
      token_endpoint_auth_methods_supported: ["client_secret_basic", "client_secret_post"],
      introspection_endpoint_auth_methods_supported: ["client_secret_basic", "client_secret_post"],
      revocation_endpoint_auth_methods_supported: ["client_secret_basic", "client_secret_post"],
      introspection_signing_alg_values_supported: ["EdDSA", "ES256", "RS256"],
    });
    expect(meta).not.toHaveProperty("authorization_endpoint");
  });

  it.each(["basic", "post"] as const)(
    "issues a service token with client_credentials (client_secret_%s)",
    async (method) => {
      const config = await discover("svc", method);
      const token = await oidc.clientCredentialsGrant(config, { scope: "orders:read", audience: "orders" });
      expect(token).toMatchObject({ token_type: "bearer", scope: "orders:read" });
      expect(token.expires_in).toBeGreaterThan(590);
      expect(token.refresh_token).toBeUndefined();
      expect(decodeJwt(token.access_token)).toMatchObject({
        iss: t.issuer,
        sub: "svc",
        client_id: "svc",
        aud: "orders",
        scope: "orders:read",
      });
    },
  );

  it("takes the audience from RFC 8707 resource indicators", async () => {
    const config = await discover("svc");
    const token = await oidc.clientCredentialsGrant(config, { resource: "https://api.example/billing" });
    expect(decodeJwt(token.access_token).aud).toBe("https://api.example/billing");
  });

  it("rotates with the refresh_token grant, narrowing scopes when asked", async () => {
    const first = await startSession("alice");
    const config = await discover("web", "post");
    const rotated = await oidc.refreshTokenGrant(config, first, { scope: "orders:read" });
    expect(rotated.refresh_token).toMatch(/^gthr_/);
    expect(rotated.refresh_token).not.toBe(first);
    expect(rotated.scope).toBe("orders:read");
    expect(decodeJwt(rotated.access_token)).toMatchObject({
      sub: "alice",
      client_id: "web",
      scope: "orders:read",
    });
    const again = await oidc.refreshTokenGrant(config, rotated.refresh_token!);
    expect(again.scope).toBe("orders:read orders:write");
  });

  it("replays the same successor inside the grace window and revokes the family on reuse", async () => {
    const first = await startSession("bob");
    const config = await discover("web");
    const a = await oidc.refreshTokenGrant(config, first);
    const b = await oidc.refreshTokenGrant(config, first);
    expect(b.refresh_token).toBe(a.refresh_token);
    t.clock.advance(11_000);
    const reuse = await oidc.refreshTokenGrant(config, first).catch((e: unknown) => e);
    expect(reuse).toBeInstanceOf(oidc.ResponseBodyError);
    expect(reuse).toMatchObject({ error: "invalid_grant", status: 400 });
    expect((reuse as oidc.ResponseBodyError).error_description).toMatch(/^refresh_token_reused: /);
    // The whole family is gone: the successor no longer works either.
    const successor = await oidc.refreshTokenGrant(config, a.refresh_token!).catch((e: unknown) => e);
    expect(successor).toMatchObject({ error: "invalid_grant" });
    expect((successor as oidc.ResponseBodyError).error_description).toMatch(/^session_revoked: /);
  });

  it("introspects active access and refresh tokens with RFC 7662 members", async () => {
    const refreshToken = await startSession("carol");
    const web = await discover("web");
    const { access_token, refresh_token } = await oidc.refreshTokenGrant(web, refreshToken);
    const intro = await discover("intro", "post");
    const claims = decodeJwt(access_token);
    const answer = await oidc.tokenIntrospection(intro, access_token);
    expect(answer).toEqual({
      active: true,
      scope: "orders:read orders:write",
      client_id: "web",
      sub: "carol",
      aud: claims.aud,
      iss: t.issuer,
      exp: claims.exp,
      iat: claims.iat,
      nbf: claims.iat,
      token_type: "Bearer",
      jti: claims.jti,
      sid: claims.sid,
    });
    const forRefresh = await oidc.tokenIntrospection(intro, refresh_token!, {
      token_type_hint: "refresh_token",
    });
    expect(forRefresh).toMatchObject({
      active: true,
      token_type: "refresh_token",
      sub: "carol",
      sid: claims.sid,
    });
    expect(typeof forRefresh.exp).toBe("number");
  });

  it("introspects inactive tokens as exactly {active: false}", async () => {
    const intro = await discover("intro");
    expect(await oidc.tokenIntrospection(intro, "not-a-token")).toEqual({ active: false });
    expect(await oidc.tokenIntrospection(intro, `gthr_${"A".repeat(43)}`)).toEqual({ active: false });
  });

  it("answers with a signed JWT (RFC 9701) that the library verifies against our JWKS", async () => {
    const svc = await discover("svc");
    const { access_token } = await oidc.clientCredentialsGrant(svc, { audience: "orders" });
    const intro = await discover("intro", "basic", { introspection_signed_response_alg: "EdDSA" });
    oidc.enableNonRepudiationChecks(intro);
    const answer = await oidc.tokenIntrospection(intro, access_token);
    expect(answer).toMatchObject({ active: true, sub: "svc", client_id: "svc", token_type: "Bearer" });
  });

  it("revokes refresh and access tokens (RFC 7009), after which introspection says inactive", async () => {
    const refreshToken = await startSession("dave");
    const web = await discover("web");
    const { access_token, refresh_token } = await oidc.refreshTokenGrant(web, refreshToken);
    await oidc.tokenRevocation(web, refresh_token!, { token_type_hint: "refresh_token" });
    const intro = await discover("intro");
    expect(await oidc.tokenIntrospection(intro, refresh_token!)).toEqual({ active: false });
    // Revoking the session moved its version: the access token it carried is dead too.
    expect(await oidc.tokenIntrospection(intro, access_token)).toEqual({ active: false });

    const svc = await discover("svc", "post");
    const service = await oidc.clientCredentialsGrant(svc, { audience: "orders" });
    await oidc.tokenRevocation(svc, service.access_token, { token_type_hint: "access_token" });
    expect(await oidc.tokenIntrospection(intro, service.access_token)).toEqual({ active: false });
  });

  it("answers 200 to revoking unknown, garbled and other clients' tokens, and revokes nothing", async () => {
    const refreshToken = await startSession("erin");
    const svc = await discover("svc");
    await oidc.tokenRevocation(svc, "garbage");
    await oidc.tokenRevocation(svc, `gthr_${"B".repeat(43)}`);
    await oidc.tokenRevocation(svc, refreshToken);
    const intro = await discover("intro");
    expect(await oidc.tokenIntrospection(intro, refreshToken)).toMatchObject({ active: true });
  });

  it("never logs a secret, a token or the form body", async () => {
    const refreshToken = await startSession("frank");
    const web = await discover("web", "post");
    await oidc.refreshTokenGrant(web, refreshToken);
    await oidc.refreshTokenGrant(web, refreshToken);
    t.clock.advance(11_000);
    await oidc.refreshTokenGrant(web, refreshToken).catch(() => undefined); // reuse: logged, as a fingerprint
    const text = t.logLines.join("");
    expect(text).toContain(fingerprint(refreshToken));
    expect(text).not.toContain(refreshToken);
    for (const { secret } of Object.values(t.creds)) expect(text).not.toContain(secret);
    expect(text).not.toContain("client_secret=");
  });
});

describe("OAuth answers on the wire", () => {
  it("marks token answers no-store and signed introspection with its own typ", async () => {
    const { id, secret } = t.creds.svc!;
    const res = await fetch(`${t.issuer}/oauth2/token`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ grant_type: "client_credentials", client_id: id, client_secret: secret }),
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("cache-control")).toBe("no-store");
    expect(res.headers.get("pragma")).toBe("no-cache");
    const { access_token } = (await res.json()) as { access_token: string };
    const intro = await fetch(`${t.issuer}/oauth2/introspect`, {
      method: "POST",
      headers: {
        "content-type": "application/x-www-form-urlencoded",
        accept: "application/token-introspection+jwt",
        authorization: `Basic ${Buffer.from(`intro:${t.creds.intro!.secret}`).toString("base64")}`,
      },
      body: new URLSearchParams({ token: access_token }),
    });
    expect(intro.headers.get("content-type")).toBe("application/token-introspection+jwt");
    const jwt = await intro.text();
    expect(decodeProtectedHeader(jwt).typ).toBe("token-introspection+jwt");
    expect(decodeJwt(jwt)).toMatchObject({
      iss: t.issuer,
      aud: "intro",
      token_introspection: { active: true },
    });
  });
});
