import { describe, expect, it } from "vitest";
import { GatehouseError } from "../../services/shared/errors/gatehouse-error.ts";
import {
  checkAudience,
  checkScopes,
  checkTimes,
  readClaims,
} from "../../services/sidecar/verifier/claim-checks.ts";
import type { Requirement } from "../../services/sidecar/verifier/identity.ts";

/**
 * The verifier's claim rules one at a time, on the pure functions: each row names the claim (or
 * boundary) it pins, so dropping or loosening any single check fails exactly one row.
 */

const NOW_S = 1_800_000_000;
const NOW = NOW_S * 1000;
const SID = "5d0c5f5e-4e0b-4b55-9d1e-8d2c0e7f0a11";

const payload = (overrides: Record<string, unknown> = {}): Record<string, unknown> => {
  const p: Record<string, unknown> = {
    iss: "https://auth.example.com",
    sub: "user-1",
    aud: "orders",
    exp: NOW_S + 600,
    iat: NOW_S - 60,
    jti: "j-1",
    client_id: "web",
    scope: "orders:read orders:write",
    sid: SID,
    sv: 3,
    tenant: "acme",
    ...overrides,
  };
  for (const [k, v] of Object.entries(p)) if (v === undefined) delete p[k];
  return p;
};

function failure(run: () => unknown): { code: string; metadata: Record<string, string> } | "ok" {
  try {
    run();
    return "ok";
  } catch (err) {
    expect(err).toBeInstanceOf(GatehouseError);
    const e = err as GatehouseError;
    return { code: e.code, metadata: { ...e.metadata } };
  }
}

describe("readClaims: each claim's type, with the claim named in the error", () => {
  it.each<[string, Record<string, unknown>, string]>([
    ["iss a number", { iss: 5 }, "iss"],
    ["iss missing", { iss: undefined }, "iss"],
    ["sub empty", { sub: "" }, "sub"],
    ["sub a number", { sub: 1 }, "sub"],
    ["aud missing", { aud: undefined }, "aud"],
    ["aud empty", { aud: "" }, "aud"],
    ["aud an empty array", { aud: [] }, "aud"],
    ["aud an array with an empty string", { aud: ["orders", ""] }, "aud"],
    ["aud an array with a number", { aud: ["orders", 5] }, "aud"],
    ["aud an object", { aud: { 0: "orders", length: 1 } }, "aud"],
    ["exp missing", { exp: undefined }, "exp"],
    ["exp a string", { exp: String(NOW_S + 600) }, "exp"],
    ["exp infinite", { exp: Number.POSITIVE_INFINITY }, "exp"],
    ["iat missing", { iat: undefined }, "iat"],
    ["iat a string", { iat: "0" }, "iat"],
    ["nbf a string", { nbf: "0" }, "nbf"],
    ["nbf null", { nbf: null }, "nbf"],
    ["nbf infinite", { nbf: Number.NEGATIVE_INFINITY }, "nbf"],
    ["jti empty", { jti: "" }, "jti"],
    ["jti missing", { jti: undefined }, "jti"],
    ["client_id empty", { client_id: "" }, "client_id"],
    ["client_id a number", { client_id: 7 }, "client_id"],
    ["scope an array", { scope: ["orders:read"] }, "scope"],
    ["scope null", { scope: null }, "scope"],
    ["sid empty", { sid: "" }, "sid"],
    ["sid a number", { sid: 5 }, "sid"],
    ["sid without sv", { sv: undefined }, "sv"],
    ["sid with a fractional sv", { sv: 1.5 }, "sv"],
    ["sid with sv as a string", { sv: "3" }, "sv"],
    ["sid with sv beyond safe integers", { sv: 2 ** 53 }, "sv"],
    ["sv without sid, not an integer", { sid: undefined, sv: "3" }, "sv"],
    ["tenant a number", { tenant: 5 }, "tenant"],
    ["tenant null", { tenant: null }, "tenant"],
  ])("%s → malformed_token naming %s", (_name, overrides, claim) => {
    expect(failure(() => readClaims(payload(overrides), "kid-1"))).toEqual({
      code: "malformed_token",
      metadata: { claim },
    });
    expect(() => readClaims(payload(overrides), "kid-1")).toThrow(
      `claim ${claim} is missing or has the wrong type`,
    );
  });

  it.each<[string, Record<string, unknown>]>([
    ["every claim", {}],
    ["a service token: no sid, no sv", { sid: undefined, sv: undefined }],
    ["sv without sid when it is an integer", { sid: undefined, sv: 2 }],
    ["an audience array", { aud: ["billing", "orders"] }],
    ["no scope, no tenant, an nbf", { scope: undefined, tenant: undefined, nbf: NOW_S }],
    ["an empty scope and an empty tenant", { scope: "", tenant: "" }],
  ])("accepts %s", (_name, overrides) => {
    expect(failure(() => readClaims(payload(overrides), "kid-1"))).toBe("ok");
  });

  it("reads the identity the app is handed", () => {
    const token = "a.b.c";
    const read = readClaims(payload({ nbf: NOW_S - 5, plan: { tier: "gold" } }), "kid-1", token);
    expect(read.issuer).toBe("https://auth.example.com");
    expect(read.notBeforeMs).toBe((NOW_S - 5) * 1000);
    expect(read.identity).toEqual({
      subject: "user-1",
      clientId: "web",
      scopes: ["orders:read", "orders:write"],
      audience: ["orders"],
      jti: "j-1",
      expiresAt: NOW_S + 600,
      issuedAt: NOW_S - 60,
      kid: "kid-1",
      sessionId: SID,
      sessionVersion: 3,
      tenant: "acme",
      token,
      claims: payload({ nbf: NOW_S - 5, plan: { tier: "gold" } }),
    });
    expect(Object.isFrozen(read.identity)).toBe(true);
    expect(Object.isFrozen(read.identity.scopes)).toBe(true);
    expect(Object.isFrozen(read.identity.audience)).toBe(true);
    expect(Object.isFrozen(read.identity.claims.plan)).toBe(true);
  });

  it("leaves out what the token does not carry", () => {
    const read = readClaims(payload({ sid: undefined, sv: undefined, tenant: undefined }), "kid-1");
    expect(read.notBeforeMs).toBeUndefined();
    expect(read.identity).not.toHaveProperty("sessionId");
    expect(read.identity).not.toHaveProperty("sessionVersion");
    expect(read.identity).not.toHaveProperty("tenant");
    expect(read.identity).not.toHaveProperty("token");
  });

  it.each<[string | undefined, string[]]>([
    [undefined, []],
    ["", []],
    ["a", ["a"]],
    ["a b", ["a", "b"]],
    [" a  b ", ["a", "b"]],
  ])("splits scope %j into %j", (scope, scopes) => {
    const read = readClaims(payload({ scope }), "k");
    expect(read.identity.scopes).toEqual(scopes);
    expect(Object.isFrozen(read.identity.scopes)).toBe(true);
  });
});

describe("checkTimes: the boundaries, with and without skew", () => {
  const times = (claims: Record<string, unknown>) => readClaims(payload(claims), "k");
  it.each<[string, Record<string, unknown>, number, string]>([
    ["exp one second ahead", { exp: NOW_S + 1 }, 0, "ok"],
    ["exp exactly now", { exp: NOW_S }, 0, "token_expired"],
    ["exp just inside the skew", { exp: NOW_S - 29 }, 30_000, "ok"],
    ["exp exactly at the skew", { exp: NOW_S - 30 }, 30_000, "token_expired"],
    ["nbf exactly now", { nbf: NOW_S }, 0, "ok"],
    ["nbf one second ahead", { nbf: NOW_S + 1 }, 0, "token_not_yet_valid"],
    ["nbf exactly at the skew", { nbf: NOW_S + 30 }, 30_000, "ok"],
    ["nbf just past the skew", { nbf: NOW_S + 31 }, 30_000, "token_not_yet_valid"],
    ["iat exactly now", { iat: NOW_S }, 0, "ok"],
    ["iat one second ahead", { iat: NOW_S + 1 }, 0, "token_not_yet_valid"],
    ["iat exactly at the skew", { iat: NOW_S + 30 }, 30_000, "ok"],
    ["iat just past the skew", { iat: NOW_S + 31 }, 30_000, "token_not_yet_valid"],
  ])("%s → %s", (_name, claims, skewMs, expected) => {
    const result = failure(() => checkTimes(times(claims), NOW, skewMs));
    expect(result === "ok" ? "ok" : result.code).toBe(expected);
  });

  it("names which time failed", () => {
    const err = (claims: Record<string, unknown>) => {
      try {
        checkTimes(times(claims), NOW, 0);
      } catch (e) {
        return (e as Error).message;
      }
      return "";
    };
    expect(err({ exp: NOW_S })).toBe("token has expired");
    expect(err({ nbf: NOW_S + 5 })).toMatch(/nbf/);
    expect(err({ iat: NOW_S + 5 })).toMatch(/iat/);
  });
});

describe("checkAudience", () => {
  it.each<[string[], string[], string]>([
    [["orders"], ["orders"], "ok"],
    [["billing", "orders"], ["orders"], "ok"],
    [["orders"], ["billing", "orders"], "ok"],
    [["orders"], ["billing"], "wrong_audience"],
    [["orders"], [], "wrong_audience"],
    [["Orders"], ["orders"], "wrong_audience"],
    [["orders"], ["billing", "shipping"], "wrong_audience"],
  ])("token %j, accepted %j → %s", (audience, accepted, expected) => {
    const result = failure(() => checkAudience(audience, accepted));
    expect(result === "ok" ? "ok" : result.code).toBe(expected);
    if (result !== "ok") expect(result.metadata).toEqual({ audience: accepted.join(" ") });
    if (result !== "ok") {
      expect(() => checkAudience(audience, accepted)).toThrow("token is not meant for this audience");
    }
  });
});

describe("checkScopes: allOf needs every scope, anyOf one of them", () => {
  const has = ["orders:read", "orders:write"];
  it.each<[string, Requirement["scopes"], Record<string, string> | "ok"]>([
    ["no requirement", undefined, "ok"],
    ["empty lists", { allOf: [], anyOf: [] }, "ok"],
    ["allOf held", { allOf: ["orders:read", "orders:write"] }, "ok"],
    [
      "allOf partly held",
      { allOf: ["orders:read", "orders:admin"] },
      { scope: "orders:read orders:admin", missing: "orders:admin", requirement: "allOf" },
    ],
    [
      "allOf with two missing",
      { allOf: ["a", "orders:read", "b"] },
      { scope: "a orders:read b", missing: "a b", requirement: "allOf" },
    ],
    ["anyOf with one held", { anyOf: ["orders:admin", "orders:read"] }, "ok"],
    [
      "anyOf with none held",
      { anyOf: ["orders:admin", "root"] },
      { scope: "orders:admin root", missing: "orders:admin root", requirement: "anyOf" },
    ],
    ["allOf and anyOf both held", { allOf: ["orders:read"], anyOf: ["root", "orders:write"] }, "ok"],
    [
      "allOf held, anyOf not",
      { allOf: ["orders:read"], anyOf: ["root"] },
      { scope: "root", missing: "root", requirement: "anyOf" },
    ],
  ])("%s", (_name, required, expected) => {
    const result = failure(() => checkScopes(has, required));
    if (expected === "ok") expect(result).toBe("ok");
    else expect(result).toEqual({ code: "insufficient_scope", metadata: expected });
  });

  it("says which scopes are missing", () => {
    const message = (required: Requirement["scopes"]) => {
      try {
        checkScopes(has, required);
      } catch (e) {
        return (e as Error).message;
      }
      return "";
    };
    expect(message({ allOf: ["orders:read", "a", "b"] })).toBe("token lacks scope a b");
    expect(message({ anyOf: ["a", "b"] })).toBe("token needs one of the scopes a b");
  });
});
