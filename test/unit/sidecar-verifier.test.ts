import { createHmac, randomUUID, sign } from "node:crypto";
import { beforeAll, describe, expect, it } from "vitest";
import { GatehouseError } from "../../services/shared/errors/gatehouse-error.ts";
import { createMemoryRevocationState } from "../../services/sidecar/revocation-state/index.ts";
import type { KeyResolver, Requirement } from "../../services/sidecar/verifier/index.ts";
import { createVerifier } from "../../services/sidecar/verifier/index.ts";
import { SIGNING_ALGORITHMS, type SigningAlgorithm } from "../../services/token/keys/signing-key-material.ts";
import { buildAccessTokenClaims } from "../../services/token/tokens/access-token-claims.ts";
import { createAccessTokenSigner } from "../../services/token/tokens/access-token-signer.ts";
import { generateTestKeys, type TestKey } from "../support/signing-test-keys.ts";

const ISSUER = "https://auth.example.com";
const NOW_S = 1_800_000_000;
const NOW = NOW_S * 1000;
const SID = "5d0c5f5e-4e0b-4b55-9d1e-8d2c0e7f0a11";

let keys: Record<SigningAlgorithm, TestKey>;
let ed: TestKey;

beforeAll(async () => {
  keys = await generateTestKeys();
  ed = keys.EdDSA;
});

function claims(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const base = buildAccessTokenClaims({
    issuer: ISSUER,
    subject: "user-1",
    audience: ["orders"],
    clientId: "web",
    scopes: ["orders:read", "orders:write"],
    sessionId: SID,
    sessionVersion: 3,
    tenant: "acme",
    custom: { plan: "gold" },
    jti: randomUUID(),
    nowSeconds: NOW_S - 60,
    ttlSeconds: 600,
  });
  const merged: Record<string, unknown> = { ...base, ...overrides };
  for (const [k, v] of Object.entries(merged)) if (v === undefined) delete merged[k];
  return merged;
}

/** The token service's own signer: the real thing. */
function mint(alg: SigningAlgorithm = "EdDSA", overrides: Record<string, unknown> = {}): string {
  const key = keys[alg];
  return createAccessTokenSigner({ kid: key.kid, algorithm: alg, privateKey: key.privateKey })(
    claims(overrides) as never,
  );
}

const b64 = (text: string | Buffer) => Buffer.from(text).toString("base64url");

/** Signs arbitrary header and payload text, for tokens the token service would never produce. */
function signRaw(
  headerText: string | Buffer,
  payloadText: string | Buffer,
  key: TestKey = ed,
  alg: string = key.algorithm,
): string {
  const input = `${b64(headerText)}.${b64(payloadText)}`;
  const data = Buffer.from(input);
  const sig =
    alg === "EdDSA"
      ? sign(null, data, key.privateKey)
      : alg === "ES256"
        ? sign("sha256", data, { key: key.privateKey, dsaEncoding: "ieee-p1363" })
        : sign("sha256", data, key.privateKey);
  return `${input}.${sig.toString("base64url")}`;
}

function header(overrides: Record<string, unknown> = {}, key: TestKey = ed): string {
  const h: Record<string, unknown> = { alg: key.algorithm, typ: "at+jwt", kid: key.kid, ...overrides };
  for (const [k, v] of Object.entries(h)) if (v === undefined) delete h[k];
  return JSON.stringify(h);
}

const withHeader = (overrides: Record<string, unknown>, key: TestKey = ed) =>
  signRaw(header(overrides, key), JSON.stringify(claims()), key);
const withClaims = (overrides: Record<string, unknown>) =>
  signRaw(header(), JSON.stringify(claims(overrides)));

const resolveKey: KeyResolver = ({ kid }) => {
  const key = Object.values(keys).find((k) => k.kid === kid);
  if (!key) throw new GatehouseError("unknown_key", "no key with this kid");
  return key.publicKey;
};

function setup(options: { failOpen?: boolean; cacheMaxEntries?: number } = {}) {
  const revocation = createMemoryRevocationState({ stalenessBoundMs: 30_000 });
  revocation.markFresh(NOW);
  const decisions: string[] = [];
  const verifier = createVerifier({
    issuer: ISSUER,
    audiences: ["orders"],
    resolveKey,
    revocation,
    now: () => NOW,
    onDecision: (d) => decisions.push(d),
    ...options,
  });
  return { verifier, revocation, decisions };
}

async function reasonOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
    return "ok";
  } catch (err) {
    expect(err).toBeInstanceOf(GatehouseError);
    return (err as GatehouseError).code;
  }
}

describe("verifier: accepted tokens", () => {
  it.each(SIGNING_ALGORITHMS)("accepts a %s token minted by the token service", async (alg) => {
    const { verifier } = setup();
    const token = mint(alg);
    const identity = await verifier.verify(token, { scopes: { allOf: ["orders:read"] } });
    expect(identity).toMatchObject({
      subject: "user-1",
      clientId: "web",
      scopes: ["orders:read", "orders:write"],
      audience: ["orders"],
      sessionId: SID,
      sessionVersion: 3,
      tenant: "acme",
      expiresAt: NOW_S + 540,
      issuedAt: NOW_S - 60,
      kid: keys[alg].kid,
    });
    expect(identity.claims.plan).toBe("gold");
    expect(Object.isFrozen(identity)).toBe(true);
    expect(Object.isFrozen(identity.claims)).toBe(true);
    expect(identity.token).toBeUndefined();
  });

  it("accepts application/at+jwt, an audience array, a service token without sid, and exp within the skew", async () => {
    const { verifier } = setup();
    const token = signRaw(
      header({ typ: "application/AT+JWT" }),
      JSON.stringify(claims({ aud: ["billing", "orders"], sid: undefined, sv: undefined, exp: NOW_S - 10 })),
    );
    const identity = await verifier.verify(token);
    expect(identity.audience).toEqual(["billing", "orders"]);
    expect(identity.sessionId).toBeUndefined();
  });

  it("uses the route's audiences instead of its own when the route names some", async () => {
    const { verifier } = setup();
    const token = mint("EdDSA", { aud: "billing" });
    expect(await reasonOf(verifier.verify(token))).toBe("wrong_audience");
    await expect(verifier.verify(token, { audiences: ["billing"] })).resolves.toMatchObject({
      subject: "user-1",
    });
  });

  it("exposes the token only when asked", async () => {
    const revocation = createMemoryRevocationState();
    revocation.markFresh(NOW);
    const verifier = createVerifier({
      issuer: ISSUER,
      audiences: ["orders"],
      resolveKey,
      revocation,
      now: () => NOW,
      exposeToken: true,
    });
    const token = mint();
    expect((await verifier.verify(token)).token).toBe(token);
  });

  it("refuses options that could weaken it", () => {
    const revocation = createMemoryRevocationState();
    const base = { issuer: ISSUER, resolveKey, revocation };
    expect(() => createVerifier({ ...base, algorithms: ["HS256"] })).toThrow(TypeError);
    expect(() => createVerifier({ ...base, algorithms: ["none"] })).toThrow(TypeError);
    expect(() => createVerifier({ ...base, algorithms: [] })).toThrow(TypeError);
    expect(() => createVerifier({ ...base, issuer: "" })).toThrow(TypeError);
    expect(() => createVerifier({ ...base, clockSkewMs: 3_600_000 })).toThrow(TypeError);
  });
});

describe("verifier: the adversarial corpus, each with its own reason", () => {
  const hs256 = () => {
    // The classic confusion attack: HMAC keyed with the public key the attacker can download.
    const input = `${b64(header({ alg: "HS256" }))}.${b64(JSON.stringify(claims()))}`;
    const secret = ed.publicKey.export({ format: "der", type: "spki" });
    return `${input}.${createHmac("sha256", secret).update(input).digest("base64url")}`;
  };
  const flipLast = (s: string) => s.slice(0, -2) + (s.at(-2) === "A" ? "B" : "A") + s.slice(-1);

  const cases: [string, string, () => string, Requirement?][] = (
    [
      ["empty token", () => "", "missing_token"],
      [
        "alg none, empty signature",
        () => `${b64(header({ alg: "none" }))}.${b64(JSON.stringify(claims()))}.`,
        "malformed_token",
      ],
      [
        "alg none with a signature",
        () => `${b64(header({ alg: "none" }))}.${b64(JSON.stringify(claims()))}.AAAA`,
        "unsupported_algorithm",
      ],
      ["HS256 keyed with the public key", hs256, "unsupported_algorithm"],
      ["alg missing", () => withHeader({ alg: undefined }), "unsupported_algorithm"],
      ["alg not allowed (PS256)", () => withHeader({ alg: "PS256" }), "unsupported_algorithm"],
      [
        "RS256 token naming the EdDSA key's kid",
        () => withHeader({ alg: "RS256", kid: ed.kid }, keys.RS256),
        "unsupported_algorithm",
      ],
      [
        "EdDSA token naming the ES256 key's kid",
        () => withHeader({ kid: keys.ES256.kid }),
        "unsupported_algorithm",
      ],
      ["unknown kid", () => withHeader({ kid: "no-such-key" }), "unknown_key"],
      ["kid with a path", () => withHeader({ kid: "../../../etc/passwd" }), "unknown_key"],
      ["kid with SQL", () => withHeader({ kid: "x' OR '1'='1'; --" }), "unknown_key"],
      ["kid missing", () => withHeader({ kid: undefined }), "unknown_key"],
      ["kid not a string", () => withHeader({ kid: 42 }), "unknown_key"],
      ["kid of 1000 characters", () => withHeader({ kid: "k".repeat(1000) }), "unknown_key"],
      [
        "tampered header",
        () => {
          const [h, p, s] = mint().split(".");
          return `${b64(Buffer.from(h!, "base64url").toString().replace("}", ',"x":1}'))}.${p}.${s}`;
        },
        "bad_signature",
      ],
      [
        "tampered payload",
        () => {
          const [h, , s] = mint().split(".");
          return `${h}.${b64(JSON.stringify(claims({ sub: "admin" })))}.${s}`;
        },
        "bad_signature",
      ],
      ["tampered signature", () => flipLast(mint()), "bad_signature"],
      [
        "signature from another key",
        () => {
          const [h, p] = mint().split(".");
          const [, , s] = mint("EdDSA").split(".");
          return `${h}.${p}.${s}`;
        },
        "bad_signature",
      ],
      [
        "signature truncated",
        () => {
          const t = mint();
          const i = t.lastIndexOf(".");
          return `${t.slice(0, i)}.${Buffer.from(t.slice(i + 1), "base64url")
            .subarray(0, 60)
            .toString("base64url")}`;
        },
        "bad_signature",
      ],
      [
        "ES256 signature in DER",
        () => {
          const t = mint("ES256");
          const i = t.lastIndexOf(".");
          return `${t.slice(0, i)}.${sign("sha256", Buffer.from(t.slice(0, i)), keys.ES256.privateKey).toString("base64url")}`;
        },
        "bad_signature",
      ],
      [
        "signature in non-canonical base64url",
        () => {
          const t = mint();
          const last = t.at(-1)!;
          const alt = "AQgw".includes(last) ? String.fromCharCode(last.charCodeAt(0) + 1) : last;
          return t.slice(0, -1) + alt;
        },
        "malformed_token",
      ],
      ["two segments", () => mint().split(".").slice(0, 2).join("."), "malformed_token"],
      ["four segments", () => `${mint()}.AAAA`, "malformed_token"],
      [
        "an empty segment",
        () => {
          const [h, , s] = mint().split(".");
          return `${h}..${s}`;
        },
        "malformed_token",
      ],
      ["non-base64url characters", () => mint().replace(".", "*."), "malformed_token"],
      ["base64 padding", () => `${mint()}==`, "malformed_token"],
      [
        "impossible base64url length",
        () => {
          const [h, p, s] = mint().split(".");
          return `${h}.${p}${"A".repeat((5 - (p!.length % 4)) % 4)}.${s}`;
        },
        "malformed_token",
      ],
      [
        "header not JSON",
        () => {
          const [, p, s] = mint().split(".");
          return `${b64("not json")}.${p}.${s}`;
        },
        "malformed_token",
      ],
      ["payload not JSON", () => signRaw(header(), "{sub: user-1}"), "malformed_token"],
      ["payload a JSON array", () => signRaw(header(), "[1,2,3]"), "malformed_token"],
      ["payload JSON null", () => signRaw(header(), "null"), "malformed_token"],
      ["16 KiB token", () => withClaims({ pad: "x".repeat(16 * 1024) }), "malformed_token"],
      [
        "duplicated claim",
        () => signRaw(header(), JSON.stringify(claims()).replace("{", '{"sub":"a",')),
        "malformed_token",
      ],
      [
        "duplicated claim in nested object",
        () =>
          signRaw(
            header(),
            JSON.stringify(claims({ act: { sub: "a" } })).replace('"act":{', '"act":{"sub":"b",'),
          ),
        "malformed_token",
      ],
      [
        "duplicated claim spelled with an escape",
        () => signRaw(header(), JSON.stringify(claims()).replace("{", '{"s\\u0075b":"admin",')),
        "malformed_token",
      ],
      [
        "duplicated header member",
        () => signRaw(header().replace("{", '{"alg":"none",'), JSON.stringify(claims())),
        "malformed_token",
      ],
      [
        // jose (a strict UTF-8 decoder) refuses these; a replacing decoder would read a U+FFFD.
        "payload with a byte that is not UTF-8",
        () => signRaw(header(), invalidUtf8(JSON.stringify(claims()))),
        "malformed_token",
      ],
      [
        "header with a byte that is not UTF-8",
        () => signRaw(invalidUtf8(header()), JSON.stringify(claims())),
        "malformed_token",
      ],
      ["exp as a string", () => withClaims({ exp: String(NOW_S + 600) }), "malformed_token"],
      ["iat missing", () => withClaims({ iat: undefined }), "malformed_token"],
      ["nbf as a string", () => withClaims({ nbf: "soon" }), "malformed_token"],
      ["sub missing", () => withClaims({ sub: undefined }), "malformed_token"],
      ["sub empty", () => withClaims({ sub: "" }), "malformed_token"],
      ["aud a number", () => withClaims({ aud: 7 }), "malformed_token"],
      ["aud an empty array", () => withClaims({ aud: [] }), "malformed_token"],
      ["scope an array", () => withClaims({ scope: ["orders:read"] }), "malformed_token"],
      ["sid without an integer sv", () => withClaims({ sv: 1.5 }), "malformed_token"],
      ["client_id missing", () => withClaims({ client_id: undefined }), "malformed_token"],
      ["jti missing", () => withClaims({ jti: undefined }), "malformed_token"],
      ["crit header", () => withHeader({ crit: ["exp"], exp: 1 }), "malformed_token"],
      ["jku header", () => withHeader({ jku: "https://evil.example/jwks.json" }), "malformed_token"],
      ["jwk header", () => withHeader({ jwk: ed.publicJwk }), "malformed_token"],
      ["x5u header", () => withHeader({ x5u: "https://evil.example/cert.pem" }), "malformed_token"],
      ["typ JWT", () => withHeader({ typ: "JWT" }), "wrong_token_type"],
      ["typ missing", () => withHeader({ typ: undefined }), "wrong_token_type"],
      ["wrong iss", () => withClaims({ iss: "https://evil.example.com" }), "wrong_issuer"],
      ["iss with a trailing slash", () => withClaims({ iss: `${ISSUER}/` }), "wrong_issuer"],
      ["expired", () => withClaims({ exp: NOW_S - 31 }), "token_expired"],
      ["expired exactly at the skew", () => withClaims({ exp: NOW_S - 30 }), "token_expired"],
      ["nbf in the future", () => withClaims({ nbf: NOW_S + 31 }), "token_not_yet_valid"],
      ["iat in the future", () => withClaims({ iat: NOW_S + 31 }), "token_not_yet_valid"],
      ["wrong aud", () => withClaims({ aud: "billing" }), "wrong_audience"],
      ["wrong aud for the route", () => mint(), "wrong_audience", { audiences: ["billing"] }],
      [
        "scope missing (allOf)",
        () => mint(),
        "insufficient_scope",
        { scopes: { allOf: ["orders:read", "orders:admin"] } },
      ],
      [
        "scope missing (anyOf)",
        () => mint(),
        "insufficient_scope",
        { scopes: { anyOf: ["orders:admin", "root"] } },
      ],
      [
        "no scope at all",
        () => withClaims({ scope: undefined }),
        "insufficient_scope",
        { scopes: { anyOf: ["orders:read"] } },
      ],
    ] as [string, () => string, string, Requirement?][]
  ).map(([name, make, expected, req]) => [name, expected, make, req]);

  it.each(cases)("%s → %s", async (_name, expected, make, requirement) => {
    const { verifier, decisions } = setup();
    expect(await reasonOf(verifier.verify(make(), requirement))).toBe(expected);
    expect(decisions).toEqual([expected]);
  });

  it("passes within the skew what it rejects beyond it", async () => {
    const { verifier } = setup();
    for (const c of [{ exp: NOW_S - 29 }, { nbf: NOW_S + 30 }, { iat: NOW_S + 30 }]) {
      expect(await reasonOf(verifier.verify(withClaims(c)))).toBe("ok");
    }
  });

  it("names the missing scopes in the error metadata", async () => {
    const { verifier } = setup();
    const err = await verifier
      .verify(mint(), { scopes: { allOf: ["orders:read", "orders:admin"] } })
      .catch((e) => e);
    expect(err.metadata).toEqual({
      scope: "orders:read orders:admin",
      missing: "orders:admin",
      requirement: "allOf",
    });
    const any = await verifier.verify(mint(), { scopes: { anyOf: ["a", "b"] } }).catch((e) => e);
    expect(any.metadata).toMatchObject({ scope: "a b", requirement: "anyOf" });
  });

  it("wraps a resolver's own failure instead of leaking it", async () => {
    const revocation = createMemoryRevocationState();
    revocation.markFresh(NOW);
    const verifier = createVerifier({
      issuer: ISSUER,
      audiences: ["orders"],
      revocation,
      now: () => NOW,
      resolveKey: async () => {
        throw new Error("socket hang up");
      },
    });
    const err = await verifier.verify(mint()).catch((e) => e);
    expect(err).toMatchObject({ code: "internal", message: "internal error" });
  });
});

describe("verifier: revocation", () => {
  const base = { id: "e", at: NOW - 1000, until: NOW_S + 3600 };
  const cases: [
    string,
    Parameters<ReturnType<typeof createMemoryRevocationState>["apply"]>[0] | ((jti: string) => never),
    string,
  ][] = [
    ["token_revoked", { ...base, type: "token_revoked", jti: "JTI" }, "token_revoked"],
    ["session_revoked", { ...base, type: "session_revoked", sid: SID }, "session_revoked"],
    [
      "session_version above the token's sv",
      { ...base, type: "session_version", sid: SID, minVersion: 4 },
      "session_revoked",
    ],
    [
      "session_version equal to the token's sv",
      { ...base, type: "session_version", sid: SID, minVersion: 3 },
      "ok",
    ],
    [
      "subject_revoked after iat",
      { ...base, type: "subject_revoked", sub: "user-1", notBefore: NOW },
      "subject_revoked",
    ],
    [
      "subject_revoked before iat",
      { ...base, type: "subject_revoked", sub: "user-1", notBefore: (NOW_S - 120) * 1000 },
      "ok",
    ],
    ["another subject revoked", { ...base, type: "subject_revoked", sub: "user-2", notBefore: NOW }, "ok"],
    [
      "client_disabled",
      { ...base, type: "client_disabled", clientId: "web", notBefore: NOW },
      "client_disabled",
    ],
    ["key_revoked", { ...base, type: "key_revoked", kid: "KID" }, "key_revoked"],
  ];

  it.each(cases)("%s → %s", async (_name, event, expected) => {
    const { verifier, revocation } = setup();
    const jti = randomUUID();
    const token = mint("EdDSA", { jti });
    const e = JSON.parse(
      JSON.stringify(event).replace('"JTI"', JSON.stringify(jti)).replace('"KID"', JSON.stringify(ed.kid)),
    );
    revocation.apply(e);
    expect(await reasonOf(verifier.verify(token))).toBe(expected);
  });

  it("fails closed on a stale revocation state unless told to fail open", async () => {
    const closed = setup();
    closed.revocation.markFresh(NOW - 31_000);
    expect(await reasonOf(closed.verifier.verify(mint()))).toBe("revocation_state_stale");
    const open = setup({ failOpen: true });
    open.revocation.markFresh(NOW - 31_000);
    expect(await reasonOf(open.verifier.verify(mint()))).toBe("ok");
    // Revoked still beats stale: the state we have is still evidence.
    const jti = randomUUID();
    open.revocation.apply({ id: "x", at: NOW, until: NOW_S + 600, type: "token_revoked", jti });
    expect(await reasonOf(open.verifier.verify(mint("EdDSA", { jti })))).toBe("token_revoked");
  });
});

describe("verifier: the verified-token cache", () => {
  it("answers a repeated token from the cache and still applies the route's rules", async () => {
    const { verifier, decisions } = setup();
    const seen: boolean[] = [];
    const revocation = createMemoryRevocationState();
    revocation.markFresh(NOW);
    const counting = createVerifier({
      issuer: ISSUER,
      audiences: ["orders"],
      resolveKey,
      revocation,
      now: () => NOW,
      onDecision: (_d, _ms, cached) => seen.push(cached),
    });
    const token = mint();
    await counting.verify(token);
    await counting.verify(token);
    expect(await reasonOf(counting.verify(token, { scopes: { allOf: ["orders:admin"] } }))).toBe(
      "insufficient_scope",
    );
    expect(await reasonOf(counting.verify(token, { audiences: ["billing"] }))).toBe("wrong_audience");
    expect(seen).toEqual([false, true, true, true]);
    expect(counting.cacheSize).toBe(1);
    expect(decisions).toEqual([]);
    expect(verifier.cacheSize).toBe(0);
  });

  it("rejects a cached token once it has expired", async () => {
    const { verifier } = setup();
    const token = mint("EdDSA", { exp: NOW_S + 60 });
    await verifier.verify(token, undefined, NOW);
    expect(verifier.cacheSize).toBe(1);
    expect(await reasonOf(verifier.verify(token, undefined, NOW + 60_000 + 30_000))).toBe("token_expired");
  });

  it("rejects a cached token once it is revoked", async () => {
    const { verifier, revocation } = setup();
    const jti = randomUUID();
    const token = mint("EdDSA", { jti });
    await verifier.verify(token);
    revocation.apply({ id: "r", at: NOW, until: NOW_S + 600, type: "token_revoked", jti });
    expect(await reasonOf(verifier.verify(token))).toBe("token_revoked");
    revocation.apply({ id: "k", at: NOW, until: NOW_S + 600, type: "key_revoked", kid: ed.kid });
    expect(await reasonOf(verifier.verify(mint()))).toBe("key_revoked");
  });

  it("keeps at most cacheMaxEntries tokens and can be turned off", async () => {
    const small = setup({ cacheMaxEntries: 3 });
    for (let i = 0; i < 5; i++) await small.verifier.verify(mint());
    expect(small.verifier.cacheSize).toBe(3);
    const off = setup({ cacheMaxEntries: 0 });
    await off.verifier.verify(mint());
    expect(off.verifier.cacheSize).toBe(0);
  });

  it("never caches a token that failed", async () => {
    const { verifier } = setup();
    const bad = withClaims({ iss: "https://evil.example.com" });
    await verifier.verify(bad).catch(() => {});
    await verifier.verify(flip(mint())).catch(() => {});
    expect(verifier.cacheSize).toBe(0);
  });
});

/** JSON text with an extra string member holding a lone 0xFF byte, which UTF-8 never contains. */
function invalidUtf8(json: string): Buffer {
  return Buffer.concat([Buffer.from('{"note":"'), Buffer.from([0xff]), Buffer.from(`",${json.slice(1)}`)]);
}

function flip(token: string): string {
  const i = token.length - 2;
  return token.slice(0, i) + (token[i] === "A" ? "B" : "A") + token.slice(i + 1);
}

describe("verifier: options and the key resolver", () => {
  const revocation = () => {
    const r = createMemoryRevocationState();
    r.markFresh(NOW);
    return r;
  };
  const base = () => ({
    issuer: ISSUER,
    audiences: ["orders"],
    resolveKey,
    revocation: revocation(),
    now: () => NOW,
  });

  it.each<[string, Record<string, unknown>, boolean]>([
    ["clockSkewMs 0", { clockSkewMs: 0 }, true],
    ["clockSkewMs 300000", { clockSkewMs: 300_000 }, true],
    ["clockSkewMs -1", { clockSkewMs: -1 }, false],
    ["clockSkewMs 300001", { clockSkewMs: 300_001 }, false],
    ["clockSkewMs NaN", { clockSkewMs: Number.NaN }, false],
    ["cacheMaxEntries 0", { cacheMaxEntries: 0 }, true],
    ["cacheMaxEntries -1", { cacheMaxEntries: -1 }, false],
    ["cacheMaxEntries 1.5", { cacheMaxEntries: 1.5 }, false],
    ["algorithms with one unknown", { algorithms: ["EdDSA", "HS256"] }, false],
    ["issuer not a string", { issuer: 5 }, false],
  ])("%s: accepted %s", (_name, options, ok) => {
    const create = () => createVerifier({ ...base(), ...options } as never);
    if (ok) expect(create).not.toThrow();
    else expect(create).toThrow(TypeError);
  });

  it("accepts only the algorithms it was given", async () => {
    const verifier = createVerifier({ ...base(), algorithms: ["ES256"] });
    expect(await reasonOf(verifier.verify(mint("ES256")))).toBe("ok");
    expect(await reasonOf(verifier.verify(mint("EdDSA")))).toBe("unsupported_algorithm");
    expect(await reasonOf(verifier.verify(mint("RS256")))).toBe("unsupported_algorithm");
  });

  it("takes a route's empty audience list as its own audiences", async () => {
    const { verifier } = setup();
    expect(await reasonOf(verifier.verify(mint(), { audiences: [] }))).toBe("ok");
  });

  it("applies its own skew", async () => {
    const verifier = createVerifier({ ...base(), clockSkewMs: 0 });
    expect(await reasonOf(verifier.verify(withClaims({ exp: NOW_S + 1 })))).toBe("ok");
    expect(await reasonOf(verifier.verify(withClaims({ exp: NOW_S })))).toBe("token_expired");
  });

  it("reads the real clock when given none", async () => {
    const nowS = Math.floor(Date.now() / 1000);
    const verifier = createVerifier({ ...base(), now: undefined });
    const fresh = signRaw(header(), JSON.stringify(claims({ iat: nowS, exp: nowS + 60 })));
    expect(await reasonOf(verifier.verify(fresh))).toBe("ok");
    const old = signRaw(header(), JSON.stringify(claims({ iat: nowS - 600, exp: nowS - 120 })));
    expect(await reasonOf(verifier.verify(old))).toBe("token_expired");
  });

  it("waits for a resolver that answers with a promise, and keeps its reason when it refuses", async () => {
    const later = createVerifier({ ...base(), resolveKey: async (h) => resolveKey(h) });
    expect(await reasonOf(later.verify(mint()))).toBe("ok");
    const unknown = createVerifier({
      ...base(),
      resolveKey: async () => {
        throw new GatehouseError("unknown_key", "no key with this kid");
      },
    });
    expect(await reasonOf(unknown.verify(mint()))).toBe("unknown_key");
    const broken = createVerifier({
      ...base(),
      resolveKey: () => {
        throw new Error("boom");
      },
    });
    expect(await reasonOf(broken.verify(mint()))).toBe("internal");
  });

  it("refuses a non-string or oversized token before any work", async () => {
    const { verifier, decisions } = setup();
    expect(await reasonOf(verifier.verify(undefined as never))).toBe("missing_token");
    expect(await reasonOf(verifier.verify("a".repeat(8193)))).toBe("malformed_token");
    expect(decisions).toEqual(["missing_token", "malformed_token"]);
  });

  it("does not cache a token that is expired at the skew's edge", async () => {
    const { verifier } = setup();
    expect(await reasonOf(verifier.verify(withClaims({ exp: NOW_S - 30 })))).toBe("token_expired");
    expect(verifier.cacheSize).toBe(0);
  });

  it("reports each decision with a duration and whether the cache answered", async () => {
    const seen: [string, number, boolean][] = [];
    const verifier = createVerifier({ ...base(), onDecision: (d, ms, cached) => seen.push([d, ms, cached]) });
    const token = mint();
    await verifier.verify(token);
    await verifier.verify(token, { scopes: { allOf: ["root"] } }).catch(() => {});
    expect(seen.map(([d, , c]) => [d, c])).toEqual([
      ["ok", false],
      ["insufficient_scope", true],
    ]);
    for (const [, ms] of seen) expect(ms).toBeGreaterThanOrEqual(0);
  });

  it("says revocation_state_stale with a retry hint", async () => {
    const r = createMemoryRevocationState({ stalenessBoundMs: 30_000 });
    r.markFresh(NOW - 31_000);
    const verifier = createVerifier({ ...base(), revocation: r });
    const err = await verifier.verify(mint()).catch((e) => e);
    expect(err).toMatchObject({ code: "revocation_state_stale", retryAfterMs: 1000 });
  });
});
