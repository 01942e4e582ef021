import { createHash, randomUUID, sign } from "node:crypto";
import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import { ERROR_CODES, type GatehouseErrorCode } from "../../services/shared/errors/codes.ts";
import { GatehouseError } from "../../services/shared/errors/gatehouse-error.ts";
import { createMemoryRevocationState } from "../../services/sidecar/revocation-state/index.ts";
import { bearerToken } from "../../services/sidecar/verifier/bearer-token.ts";
import { createVerifier, type KeyResolver, type Verifier } from "../../services/sidecar/verifier/index.ts";
import { parseBasicCredentials } from "../../services/token/clients/basic-credentials.ts";
import { SIGNING_ALGORITHMS, type SigningAlgorithm } from "../../services/token/keys/signing-key-material.ts";
import { buildAccessTokenClaims } from "../../services/token/tokens/access-token-claims.ts";
import { createAccessTokenSigner } from "../../services/token/tokens/access-token-signer.ts";
import {
  deriveSuccessor,
  generateRefreshToken,
  hashRefreshToken,
  isRefreshTokenShaped,
  REFRESH_TOKEN_PREFIX,
  refreshTokenShapeProblem,
} from "../../services/token/tokens/refresh-token-format.ts";
import { generateTestKeys, type TestKey } from "../support/signing-test-keys.ts";

/**
 * Hostile input to the sidecar's token parsing and verification, the bearer-header parser, client
 * credentials and the refresh-token format: whatever arrives, the answer is a typed GatehouseError
 * with a verification reason (never a TypeError, never `internal`), and nothing but an untouched
 * token minted by the token service is ever accepted.
 */

const ISSUER = "https://auth.example.com";
const NOW_S = 1_800_000_000;
const RUNS = { numRuns: 300 };

/** The reasons a verifier may give for a token it refuses: any other code is a bug. */
const VERIFY_REASONS = new Set<GatehouseErrorCode>([
  "missing_token",
  "malformed_token",
  "unsupported_algorithm",
  "unknown_key",
  "bad_signature",
  "wrong_token_type",
  "wrong_issuer",
  "wrong_audience",
  "token_expired",
  "token_not_yet_valid",
  "insufficient_scope",
]);

let keys: Record<SigningAlgorithm, TestKey>;
let verifier: Verifier;

beforeAll(async () => {
  keys = await generateTestKeys();
  const resolveKey: KeyResolver = ({ kid }) => {
    const key = Object.values(keys).find((k) => k.kid === kid);
    if (!key) throw new GatehouseError("unknown_key", "no key with this kid");
    return key.publicKey;
  };
  const revocation = createMemoryRevocationState({ stalenessBoundMs: 30_000 });
  revocation.markFresh(NOW_S * 1000);
  // No cache: every attempt goes through the full parse and signature check.
  verifier = createVerifier({
    issuer: ISSUER,
    audiences: ["orders"],
    resolveKey,
    revocation,
    cacheMaxEntries: 0,
    now: () => NOW_S * 1000,
  });
});

function mint(alg: SigningAlgorithm = "EdDSA"): string {
  const key = keys[alg];
  return createAccessTokenSigner({ kid: key.kid, algorithm: alg, privateKey: key.privateKey })(
    buildAccessTokenClaims({
      issuer: ISSUER,
      subject: "user-1",
      audience: ["orders"],
      clientId: "web",
      scopes: ["orders:read"],
      sessionId: randomUUID(),
      sessionVersion: 1,
      tenant: null,
      custom: null,
      jti: randomUUID(),
      nowSeconds: NOW_S - 60,
      ttlSeconds: 600,
    }),
  );
}

/** How the verifier answered: "ok", or the reason of a typed refusal. Anything else fails the test. */
async function outcome(token: string): Promise<string> {
  try {
    await verifier.verify(token);
    return "ok";
  } catch (err) {
    if (!(err instanceof GatehouseError)) throw new Error(`verify threw a non-Gatehouse error: ${err}`);
    if (!VERIFY_REASONS.has(err.code)) throw new Error(`verify refused with unexpected code ${err.code}`);
    return err.code;
  }
}

const b64 = (value: string | Uint8Array) => Buffer.from(value).toString("base64url");
const BASE64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const base64urlText = fc.string({ unit: fc.constantFrom(...BASE64URL), maxLength: 200 });

/** Segments that decode to something interesting: JSON of any shape, header-like objects, bytes. */
const segment = fc.oneof(
  base64urlText,
  fc.json({ maxDepth: 3 }).map(b64),
  fc.uint8Array({ maxLength: 96 }).map(b64),
  fc
    .record(
      {
        alg: fc.constantFrom("EdDSA", "ES256", "RS256", "none", "HS256", "PS256", "", "eddsa"),
        typ: fc.constantFrom("at+jwt", "JWT", "application/at+jwt", "AT+JWT", ""),
        kid: fc.oneof(fc.string({ maxLength: 300 }), fc.integer(), fc.constant(null)),
        crit: fc.array(fc.string()),
        jwk: fc.object({ maxDepth: 1 }),
        jku: fc.webUrl(),
      },
      { requiredKeys: [] },
    )
    .map((h) => b64(JSON.stringify(h))),
  fc
    .record(
      {
        iss: fc.oneof(fc.constant(ISSUER), fc.string()),
        sub: fc.oneof(fc.string(), fc.integer()),
        aud: fc.oneof(fc.constant("orders"), fc.array(fc.string()), fc.integer()),
        exp: fc.oneof(fc.integer(), fc.double(), fc.string()),
        iat: fc.oneof(fc.integer(), fc.string()),
        nbf: fc.oneof(fc.integer(), fc.constant(null)),
        scope: fc.oneof(fc.string(), fc.array(fc.string())),
        jti: fc.string(),
        client_id: fc.string(),
        __proto__: fc.object({ maxDepth: 1 }),
      },
      { requiredKeys: [] },
    )
    .map((p) => b64(JSON.stringify(p))),
);

describe("sidecar verification under hostile tokens", () => {
  it("accepts the untouched token it is checked against (the properties below mean something)", async () => {
    for (const alg of SIGNING_ALGORITHMS) expect(await outcome(mint(alg))).toBe("ok");
  });

  it("refuses any string with a typed reason", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(fc.string({ maxLength: 400 }), fc.string({ unit: "binary", maxLength: 100 })),
        async (s) => {
          expect(await outcome(s)).not.toBe("ok");
        },
      ),
      RUNS,
    );
  });

  it("refuses any combination of base64url segments with a typed reason", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(segment, { minLength: 1, maxLength: 5 }),
        fc.constantFrom(".", "..", " .", ""),
        async (parts, sep) => {
          expect(await outcome(parts.join(sep))).not.toBe("ok");
        },
      ),
      RUNS,
    );
  });

  it("refuses a real token with another token's signature, header or payload", async () => {
    const tokens = SIGNING_ALGORITHMS.map((alg) => mint(alg)).concat([mint(), mint("ES256")]);
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...tokens),
        fc.constantFrom(...tokens),
        fc.integer({ min: 0, max: 2 }),
        async (a, b, part) => {
          fc.pre(a !== b);
          const pa = a.split(".");
          const pb = b.split(".");
          pa[part] = pb[part]!;
          const spliced = pa.join(".");
          fc.pre(spliced !== a && spliced !== b);
          expect(await outcome(spliced)).not.toBe("ok");
        },
      ),
      RUNS,
    );
  });

  it("never accepts a mutated token: changed, inserted or deleted characters, truncation, re-padding", async () => {
    const tokens = SIGNING_ALGORITHMS.map((alg) => mint(alg));
    const mutation = fc.oneof(
      fc.record({
        kind: fc.constant("replace" as const),
        at: fc.nat(),
        ch: fc.string({ unit: "binary", minLength: 1, maxLength: 1 }),
      }),
      fc.record({ kind: fc.constant("replace" as const), at: fc.nat(), ch: fc.constantFrom(...BASE64URL) }),
      fc.record({
        kind: fc.constant("insert" as const),
        at: fc.nat(),
        ch: fc.constantFrom(...BASE64URL, ".", "="),
      }),
      fc.record({ kind: fc.constant("delete" as const), at: fc.nat(), ch: fc.constant("") }),
      fc.record({ kind: fc.constant("truncate" as const), at: fc.nat(), ch: fc.constant("") }),
      fc.record({
        kind: fc.constant("pad" as const),
        at: fc.nat(),
        ch: fc.constantFrom("=", "==", " ", "\n"),
      }),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...tokens),
        fc.array(mutation, { minLength: 1, maxLength: 3 }),
        async (token, ms) => {
          let t = token;
          for (const m of ms) {
            const at = m.at % (t.length + 1);
            if (m.kind === "replace") t = t.slice(0, at) + m.ch + t.slice(at + 1);
            else if (m.kind === "insert") t = t.slice(0, at) + m.ch + t.slice(at);
            else if (m.kind === "delete") t = t.slice(0, at) + t.slice(at + 1);
            else if (m.kind === "truncate") t = t.slice(0, at);
            else t = t + m.ch;
          }
          fc.pre(t !== token);
          expect(await outcome(t)).not.toBe("ok");
        },
      ),
      RUNS,
    );
  });

  it("refuses a token whose header or payload was re-encoded with other content, even when signed by a key it names but under another algorithm", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...SIGNING_ALGORITHMS),
        fc.constantFrom(...SIGNING_ALGORITHMS),
        fc.constantFrom("none", "HS256", "EdDSA", "ES256", "RS256"),
        async (signWith, named, alg) => {
          fc.pre(signWith !== named || alg !== keys[named].algorithm);
          const header = b64(JSON.stringify({ alg, typ: "at+jwt", kid: keys[named].kid }));
          const payload = mint().split(".")[1]!;
          const input = `${header}.${payload}`;
          const key = keys[signWith];
          const data = Buffer.from(input);
          const sig =
            key.algorithm === "EdDSA"
              ? sign(null, data, key.privateKey)
              : key.algorithm === "ES256"
                ? sign("sha256", data, { key: key.privateKey, dsaEncoding: "ieee-p1363" })
                : sign("sha256", data, key.privateKey);
          expect(await outcome(`${input}.${sig.toString("base64url")}`)).not.toBe("ok");
        },
      ),
      { numRuns: 60 },
    );
  });
});

describe("Authorization header parsing under hostile input", () => {
  it("bearerToken gives back a token or refuses with missing_token / malformed_token", () => {
    const value = fc.oneof(
      fc.string({ maxLength: 200 }),
      fc.string({ maxLength: 100 }).map((s) => `Bearer ${s}`),
      fc
        .tuple(fc.constantFrom("bearer", "BEARER", "Basic", "Bearer  ", " Bearer"), fc.string())
        .map((p) => p.join(" ")),
    );
    fc.assert(
      fc.property(
        fc.oneof(value, fc.array(value, { maxLength: 3 }), fc.constantFrom(undefined, null)),
        (header) => {
          try {
            const token = bearerToken(header);
            expect(token).toMatch(/^[A-Za-z0-9\-._~+/]+=*$/);
          } catch (err) {
            expect(err).toBeInstanceOf(GatehouseError);
            expect(["missing_token", "malformed_token"]).toContain((err as GatehouseError).code);
          }
        },
      ),
      { numRuns: 1000 },
    );
  });

  it("parseBasicCredentials never throws and only yields non-empty parts that round-trip", () => {
    const header = fc.oneof(
      fc.string({ maxLength: 300 }),
      fc.string().map((s) => `Basic ${s}`),
      fc
        .tuple(fc.string(), fc.string())
        .map(([a, b]) => `Basic ${Buffer.from(`${a}:${b}`).toString("base64")}`),
      fc.uint8Array({ maxLength: 64 }).map((b) => `basic ${Buffer.from(b).toString("base64")}`),
      fc.constant(undefined),
    );
    fc.assert(
      fc.property(header, (h) => {
        const parsed = parseBasicCredentials(h);
        if (parsed !== null) {
          expect(parsed.clientId).not.toBe("");
          expect(parsed.secret).not.toBe("");
        }
      }),
      { numRuns: 1000 },
    );
  });
});

describe("refresh-token format under hostile input", () => {
  it("names a problem for anything that is not gthr_ + 43 base64url characters, and never throws", () => {
    const candidate = fc.oneof(
      fc.string({ maxLength: 80 }),
      fc.string({ maxLength: 80 }).map((s) => REFRESH_TOKEN_PREFIX + s),
      base64urlText.map((s) => REFRESH_TOKEN_PREFIX + s.slice(0, 50)),
      fc
        .string({ unit: fc.constantFrom(...BASE64URL), minLength: 43, maxLength: 43 })
        .map((s) => REFRESH_TOKEN_PREFIX + s),
      fc.string({ minLength: 4000, maxLength: 5000 }),
    );
    fc.assert(
      fc.property(candidate, (token) => {
        const problem = refreshTokenShapeProblem(token);
        const shaped = /^gthr_[A-Za-z0-9_-]{43}$/.test(token);
        expect(problem === null).toBe(shaped);
        expect(isRefreshTokenShaped(token)).toBe(shaped);
        if (problem !== null) expect(problem).toMatch(/^refresh_token /);
      }),
      { numRuns: 1000 },
    );
  });

  it("generated tokens and successors are well-shaped; a one-character change gives another hash", () => {
    const key = createHash("sha256").update("successor key").digest();
    fc.assert(
      fc.property(fc.nat(), fc.constantFrom(...BASE64URL), (at, ch) => {
        const token = generateRefreshToken(randomUUID(), { kid: "rk-mac-test", key });
        expect(refreshTokenShapeProblem(token)).toBeNull();
        expect(refreshTokenShapeProblem(deriveSuccessor(token, key))).toBeNull();
        const i = REFRESH_TOKEN_PREFIX.length + (at % 43);
        const changed = token.slice(0, i) + ch + token.slice(i + 1);
        fc.pre(changed !== token);
        expect(hashRefreshToken(changed).equals(hashRefreshToken(token))).toBe(false);
      }),
      { numRuns: 200 },
    );
  });
});

it("every reason the verifier may give is a real error code", () => {
  for (const code of VERIFY_REASONS) expect(ERROR_CODES).toContain(code);
});
