import type { JWTPayload } from "jose";
import { describe, expect, it } from "vitest";
import { GatehouseError } from "../../services/shared/errors/gatehouse-error.ts";
import { checkAssertionClaims, readAssertion } from "../../services/token/assertions/assertion-rules.ts";
import { jwksUrlProblem } from "../../services/token/assertions/jwks-url-policy.ts";
import { trustedIssuersSetting } from "../../services/token/assertions/trusted-issuers.ts";

const NOW = 1_800_000_000;
const ISSUER = "https://auth.example";
const rules = {
  audiences: [ISSUER, `${ISSUER}/oauth2/token`],
  nowS: NOW,
  maxLifetimeS: 3600,
  skewS: 60,
  requireJti: false,
};
const good: JWTPayload = { aud: ISSUER, iat: NOW, nbf: NOW, exp: NOW + 3600 };

function codeOf(run: () => unknown): string {
  try {
    run();
    return "ok";
  } catch (err) {
    return err instanceof GatehouseError ? err.code : String(err);
  }
}

describe("checkAssertionClaims", () => {
  it.each<[string, JWTPayload, Partial<typeof rules>, string]>([
    ["a Kubernetes-shaped token", good, {}, "ok"],
    ["aud the token endpoint", { ...good, aud: `${ISSUER}/oauth2/token` }, {}, "ok"],
    ["aud a list naming us", { ...good, aud: ["https://kubernetes.default.svc", ISSUER] }, {}, "ok"],
    ["aud someone else", { ...good, aud: "https://kubernetes.default.svc" }, {}, "assertion_wrong_audience"],
    ["aud missing", { ...good, aud: undefined }, {}, "assertion_wrong_audience"],
    ["aud a prefix of ours", { ...good, aud: "https://auth.example/" }, {}, "assertion_wrong_audience"],
    ["no exp", { ...good, exp: undefined }, {}, "assertion_malformed"],
    ["exp a string", { ...good, exp: "soon" as unknown as number }, {}, "assertion_malformed"],
    ["iat a string", { ...good, iat: "now" as unknown as number }, {}, "assertion_malformed"],
    ["expired within the skew", { ...good, iat: NOW - 3600, nbf: NOW - 3600, exp: NOW - 59 }, {}, "ok"],
    [
      "expired beyond the skew",
      { ...good, iat: NOW - 3600, nbf: NOW - 3600, exp: NOW - 60 },
      {},
      "assertion_expired",
    ],
    ["nbf within the skew", { ...good, nbf: NOW + 60 }, {}, "ok"],
    ["nbf beyond the skew", { ...good, nbf: NOW + 61, exp: NOW + 120 }, {}, "assertion_not_yet_valid"],
    [
      "iat in the future",
      { ...good, iat: NOW + 61, nbf: undefined, exp: NOW + 120 },
      {},
      "assertion_not_yet_valid",
    ],
    ["lifetime exactly the maximum", { ...good, exp: NOW + 3600 }, {}, "ok"],
    ["lifetime a second over", { ...good, exp: NOW + 3601 }, {}, "assertion_lifetime_too_long"],
    ["no iat: exp measured from now", { aud: ISSUER, exp: NOW + 3600 }, {}, "ok"],
    ["no iat and too far", { aud: ISSUER, exp: NOW + 3661 + 60 }, {}, "assertion_lifetime_too_long"],
    ["jti required and missing", good, { requireJti: true }, "assertion_malformed"],
    ["jti required and empty", { ...good, jti: "" }, { requireJti: true }, "assertion_malformed"],
    ["jti required and present", { ...good, jti: "a1" }, { requireJti: true }, "ok"],
  ])("%s", (_name, claims, overrides, expected) => {
    expect(codeOf(() => checkAssertionClaims(claims, { ...rules, ...overrides }))).toBe(expected);
  });

  it("returns the expiry and jti for the cache and the replay store", () => {
    expect(checkAssertionClaims({ ...good, jti: "j" }, { ...rules, requireJti: true })).toEqual({
      expiresAtS: NOW + 3600,
      jti: "j",
    });
  });
});

describe("readAssertion", () => {
  const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString("base64url");
  const jwt = (header: object, payload: object) => `${b64(header)}.${b64(payload)}.c2ln`;
  const claims = { iss: "orders", sub: "orders" };
  it.each<[string, string, string]>([
    ["a well-formed header and claims", jwt({ alg: "ES256", kid: "k" }, claims), "ok"],
    ["not a JWT", "hello", "assertion_malformed"],
    ["empty", "", "assertion_malformed"],
    ["too long", "a".repeat(9000), "assertion_malformed"],
    ["alg none", jwt({ alg: "none", kid: "k" }, claims), "assertion_algorithm_mismatch"],
    ["alg HS256", jwt({ alg: "HS256", kid: "k" }, claims), "assertion_algorithm_mismatch"],
    ["alg PS256 (not on the list)", jwt({ alg: "PS256", kid: "k" }, claims), "assertion_algorithm_mismatch"],
    ["no kid", jwt({ alg: "ES256" }, claims), "assertion_malformed"],
    ["no sub", jwt({ alg: "ES256", kid: "k" }, { iss: "orders" }), "assertion_malformed"],
    ["iss a number", jwt({ alg: "ES256", kid: "k" }, { iss: 1, sub: "x" }), "assertion_malformed"],
    ["a JWE (five parts)", `${jwt({ alg: "ES256", kid: "k" }, claims)}.x.y`, "assertion_malformed"],
  ])("%s", (_name, token, expected) => {
    expect(codeOf(() => readAssertion(token))).toBe(expected);
  });
});

describe("where key sets may be fetched from", () => {
  it.each<[string, string | null]>([
    ["https://kubernetes.default.svc.cluster.local/openid/v1/jwks", null],
    ["http://127.0.0.1:8080/jwks", null],
    ["http://localhost/jwks", null],
    ["http://[::1]:9000/jwks", null],
    ["http://keys.example/jwks", "must be https (http only on a loopback address)"],
    ["http://127.0.0.1.example/jwks", "must be https (http only on a loopback address)"],
    ["ftp://keys.example/jwks", "must be https (http only on a loopback address)"],
    ["https://user:pw@keys.example/jwks", "must not carry credentials"],
    ["not a url", "is not a URL"],
  ])("%s", (url, problem) => {
    expect(jwksUrlProblem(url)).toBe(problem);
  });
});

describe("GATEHOUSE_TRUSTED_ISSUERS", () => {
  const parse = (s: string) => trustedIssuersSetting().safeParse(s);
  it("reads issuers with and without a jwks_uri", () => {
    expect(
      parse(
        '[{"issuer":"https://k8s.example"},{"issuer":"https://b.example","jwks_uri":"https://b.example/keys"}]',
      ).data,
    ).toEqual([
      { issuer: "https://k8s.example", jwksUri: undefined },
      { issuer: "https://b.example", jwksUri: "https://b.example/keys" },
    ]);
    expect(parse("[]").data).toEqual([]);
  });

  it.each([
    ["not JSON", "issuer=https://k8s.example"],
    ["an object, not a list", '{"issuer":"https://k8s.example"}'],
    ["a misspelt member", '[{"issuer":"https://k8s.example","jwksUri":"https://k8s.example/keys"}]'],
    ["plain http elsewhere", '[{"issuer":"http://k8s.example"}]'],
    ["the same issuer twice", '[{"issuer":"https://k8s.example"},{"issuer":"https://k8s.example"}]'],
  ])("refuses %s", (_name, value) => {
    expect(parse(value).success).toBe(false);
  });
});
