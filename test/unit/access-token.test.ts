import { randomBytes, randomUUID } from "node:crypto";
import { decodeProtectedHeader, importJWK, jwtVerify } from "jose";
import { describe, expect, it } from "vitest";
import { decryptPrivateKey, encryptPrivateKey } from "../../services/token/keys/key-encryption.ts";
import {
  generateSigningKey,
  privateKeyFromPkcs8,
  SIGNING_ALGORITHMS,
} from "../../services/token/keys/signing-key-material.ts";
import {
  buildAccessTokenClaims,
  checkCustomClaims,
} from "../../services/token/tokens/access-token-claims.ts";
import { createAccessTokenSigner } from "../../services/token/tokens/access-token-signer.ts";

const NOW = Math.floor(Date.now() / 1000);

function claims(overrides = {}) {
  return buildAccessTokenClaims({
    issuer: "https://auth.example.com",
    subject: "user-1",
    audience: ["orders"],
    clientId: "web",
    scopes: ["orders:read", "orders:write"],
    sessionId: randomUUID(),
    sessionVersion: 3,
    tenant: "acme",
    custom: { plan: "gold" },
    jti: randomUUID(),
    nowSeconds: NOW,
    ttlSeconds: 600,
    ...overrides,
  });
}

describe("access token signing", () => {
  it.each(SIGNING_ALGORITHMS)("%s tokens verify with jose against the published JWK", async (alg) => {
    const key = await generateSigningKey(alg);
    expect(key.publicJwk).not.toHaveProperty("d");
    const sign = createAccessTokenSigner({
      kid: key.kid,
      algorithm: alg,
      privateKey: privateKeyFromPkcs8(key.pkcs8),
    });
    const c = claims();
    const token = sign(c);
    expect(decodeProtectedHeader(token)).toEqual({ alg, typ: "at+jwt", kid: key.kid });
    const { payload } = await jwtVerify(token, await importJWK(key.publicJwk, alg), {
      issuer: "https://auth.example.com",
      audience: "orders",
      typ: "at+jwt",
      algorithms: [alg],
    });
    expect(payload).toEqual(c);
    expect(payload).toMatchObject({
      sub: "user-1",
      scope: "orders:read orders:write",
      sv: 3,
      tenant: "acme",
      plan: "gold",
    });
  });

  it("omits sid and sv for service tokens and keeps several audiences as an array", () => {
    const c = claims({ sessionId: undefined, tenant: null, audience: ["a", "b"], custom: null });
    expect(c).not.toHaveProperty("sid");
    expect(c).not.toHaveProperty("sv");
    expect(c).not.toHaveProperty("tenant");
    expect(c.aud).toEqual(["a", "b"]);
    expect(c.exp - c.iat).toBe(600);
  });

  it("writes one audience as a string and leaves out an empty scope", () => {
    const c = claims({ audience: ["orders"], scopes: [] });
    expect(c.aud).toBe("orders");
    expect(c).not.toHaveProperty("scope");
    expect(claims({ scopes: ["a"] }).scope).toBe("a");
  });

  it("cannot be overridden by custom claims", () => {
    const c = claims({ custom: { sub: "admin" } });
    expect(c.sub).toBe("user-1");
  });
});

describe("custom claims", () => {
  it.each([
    [{ sub: "root" }, ["sub"], /reserved claim names cannot be set: sub/],
    [{ scope: "admin" }, ["scope"], /reserved/],
    [{ plan: "gold", role: "x" }, ["plan"], /may not set claims: role/],
    [{ plan: "x".repeat(5000) }, ["plan"], /exceed 4096 bytes/],
  ])("refuses %o", (custom, allowed, message) => {
    expect(() => checkCustomClaims(custom, allowed)).toThrow(message);
  });

  it("accepts allowed names within the size limit, up to exactly 4096 bytes", () => {
    expect(() => checkCustomClaims({ plan: "gold" }, ["plan"])).not.toThrow();
    // {"plan":"…"} is 11 bytes of JSON around the value.
    expect(() => checkCustomClaims({ plan: "x".repeat(4096 - 11) }, ["plan"])).not.toThrow();
    expect(() => checkCustomClaims({ plan: "x".repeat(4096 - 10) }, ["plan"])).toThrow(
      expect.objectContaining({ code: "invalid_request", message: "custom claims exceed 4096 bytes" }),
    );
  });

  it.each([
    [{ sub: "root", scope: "x" }, ["plan"], "reserved claim names cannot be set: sub, scope", "sub,scope"],
    [
      { plan: "gold", role: "x", team: "y" },
      ["plan"],
      "this client may not set claims: role, team",
      "role,team",
    ],
  ])("names every refused claim: %o", (custom, allowed, message, listed) => {
    expect(() => checkCustomClaims(custom, allowed)).toThrow(
      expect.objectContaining({ code: "claim_not_allowed", message, metadata: { claims: listed } }),
    );
  });
});

describe("private keys at rest", () => {
  it("round-trip under the master key and are bound to their kid", async () => {
    const key = await generateSigningKey("EdDSA");
    const master = randomBytes(32);
    const sealed = encryptPrivateKey(key.pkcs8, master, key.kid);
    expect(sealed.includes(key.pkcs8)).toBe(false);
    expect(decryptPrivateKey(sealed, master, key.kid).equals(key.pkcs8)).toBe(true);
    expect(() => decryptPrivateKey(sealed, randomBytes(32), key.kid)).toThrow(/GATEHOUSE_MASTER_KEY/);
    expect(() => decryptPrivateKey(sealed, master, "another-kid")).toThrow(/cannot decrypt/);
  });

  it("names the kid as its RFC 7638 thumbprint and supports RSA 3072", async () => {
    const key = await generateSigningKey("RS256", 3072);
    expect(key.kid).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(Buffer.from(key.publicJwk.n!, "base64url")).toHaveLength(384);
    await expect(generateSigningKey("RS256", 1024)).rejects.toThrow(/2048 or 3072/);
  });
});
