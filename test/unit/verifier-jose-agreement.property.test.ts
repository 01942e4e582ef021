import { sign } from "node:crypto";
import fc from "fast-check";
import { type JWTHeaderParameters, type JWTPayload, jwtVerify } from "jose";
import { beforeAll, describe, expect, it } from "vitest";
import { GatehouseError } from "../../services/shared/errors/gatehouse-error.ts";
import { createMemoryRevocationState } from "../../services/sidecar/revocation-state/index.ts";
import { createVerifier, type KeyResolver } from "../../services/sidecar/verifier/index.ts";
import { SIGNING_ALGORITHMS, type SigningAlgorithm } from "../../services/token/keys/signing-key-material.ts";
import { generateTestKeys, type TestKey } from "../support/signing-test-keys.ts";

/**
 * The sidecar's verifier accepts a token if and only if jose's `jwtVerify`, given the same issuer,
 * audiences, algorithms, `typ`, clock, tolerance, required claims and key resolver, accepts it AND
 * every rule of {@link GATEHOUSE_RULES} holds. Those rules are where Gatehouse is deliberately
 * stricter than jose; each is shown below to be one that jose lets through, so none is a silent skip.
 *
 * Clocks are whole seconds (jose floors the current time to seconds, the verifier compares in ms),
 * and time claims are whole or half seconds, which both compare exactly.
 */

const ISSUER = "https://auth.example.com";
const NOW_S = 1_800_000_000;
const SID = "5d0c5f5e-4e0b-4b55-9d1e-8d2c0e7f0a11";
const DEFAULT_AUDIENCES = ["orders"];
const REQUIRED_CLAIMS = ["iss", "sub", "aud", "exp", "iat", "jti", "client_id"];
const KEY_SOURCE_MEMBERS = ["jku", "jwk", "x5u", "x5c"];
const BOM = Buffer.from([0xef, 0xbb, 0xbf]);
const COMPACT = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

interface Verified {
  readonly token: string;
  readonly header: JWTHeaderParameters;
  readonly payload: JWTPayload;
  readonly skewS: number;
}

interface GatehouseRule {
  readonly rule: string;
  readonly holds: (v: Verified) => boolean;
}

const isNonEmptyString = (v: unknown) => typeof v === "string" && v.length > 0;
const isFiniteNumber = (v: unknown) => typeof v === "number" && Number.isFinite(v);

/** Gatehouse's rules on top of jose, applied to what jose accepted. The order is irrelevant. */
const GATEHOUSE_RULES: readonly GatehouseRule[] = [
  {
    // jose's base64url decoder (atob) skips whitespace and takes `=` padding.
    rule: "compact form: three base64url segments, no padding or whitespace, at most 8192 characters",
    holds: ({ token }) => token.length <= 8192 && COMPACT.test(token),
  },
  {
    // jose ignores the unused low bits of the last character, so one signature has many spellings.
    rule: "signature in canonical base64url",
    holds: ({ token }) => {
      const s = token.slice(token.lastIndexOf(".") + 1);
      return Buffer.from(s, "base64url").toString("base64url") === s;
    },
  },
  {
    // JSON.parse keeps the last of two equal names; another parser may keep the first.
    rule: "header and payload repeat no member name",
    holds: ({ token }) =>
      token
        .split(".")
        .slice(0, 2)
        .every((segment) => !repeatsMemberName(Buffer.from(segment, "base64url").toString("utf8"))),
  },
  {
    // jose's TextDecoder drops a leading byte-order mark before JSON.parse; JSON itself has none.
    rule: "header and payload text start with no byte-order mark",
    holds: ({ token }) =>
      token
        .split(".")
        .slice(0, 2)
        .every((segment) => !Buffer.from(segment, "base64url").subarray(0, 3).equals(BOM)),
  },
  {
    // jose accepts `crit: ["b64"]` with `b64: true`; we implement no extension.
    rule: "no crit header",
    holds: ({ header }) => header.crit === undefined,
  },
  {
    rule: "no header member that brings or points at a key (jku, jwk, x5u, x5c)",
    holds: ({ header }) =>
      KEY_SOURCE_MEMBERS.every((m) => (header as Record<string, unknown>)[m] === undefined),
  },
  {
    // jose checks presence (requiredClaims) and that exp, nbf, iat are numbers; 1e400 is Infinity.
    rule: "claim types: sub, jti, client_id non-empty strings; exp, iat (and nbf) finite numbers",
    holds: ({ payload: p }) =>
      isNonEmptyString(p.sub) &&
      isNonEmptyString(p.jti) &&
      isNonEmptyString(p.client_id) &&
      isFiniteNumber(p.exp) &&
      isFiniteNumber(p.iat) &&
      (p.nbf === undefined || isFiniteNumber(p.nbf)),
  },
  {
    // jose accepts an array holding other things as long as one member matches.
    rule: "aud a non-empty string or a non-empty array of non-empty strings",
    holds: ({ payload: { aud } }) =>
      isNonEmptyString(aud) || (Array.isArray(aud) && aud.length > 0 && aud.every(isNonEmptyString)),
  },
  {
    rule: "scope and tenant strings when present; sid a non-empty string when present; sv a safe integer whenever sid or sv is",
    holds: ({ payload: p }) =>
      (p.scope === undefined || typeof p.scope === "string") &&
      (p.tenant === undefined || typeof p.tenant === "string") &&
      (p.sid === undefined || isNonEmptyString(p.sid)) &&
      ((p.sid === undefined && p.sv === undefined) || Number.isSafeInteger(p.sv)),
  },
  {
    // jose compares iat with the clock only when given maxTokenAge; Gatehouse sets no maximum age.
    rule: "iat not later than now plus the tolerance",
    holds: ({ payload, skewS }) => (payload.iat as number) <= NOW_S + skewS,
  },
  {
    // jose does not look at act; we hand the chain to the app and to `actors` policies.
    rule: "act, when present, a chain of objects with a non-empty string sub, at most 8 deep",
    holds: ({ payload: p }) => {
      let depth = 0;
      for (let a: unknown = p.act; a !== undefined; a = (a as Record<string, unknown>).act) {
        if (typeof a !== "object" || a === null || Array.isArray(a) || ++depth > 8) return false;
        if (!isNonEmptyString((a as Record<string, unknown>).sub)) return false;
      }
      return true;
    },
  },
];

/** Whether JSON text (already accepted by JSON.parse) names a member twice in one object. */
function repeatsMemberName(text: string): boolean {
  let i = 0;
  const skipSpace = () => {
    while (" \t\n\r".includes(text[i] ?? "x")) i++;
  };
  const readString = (): string => {
    const start = i++;
    while (text[i] !== '"') i += text[i] === "\\" ? 2 : 1;
    i++;
    return JSON.parse(text.slice(start, i));
  };
  const readValue = (): boolean => {
    skipSpace();
    const c = text[i];
    let repeated = false;
    if (c === "{" || c === "[") {
      const close = c === "{" ? "}" : "]";
      const names = new Set<string>();
      i++;
      skipSpace();
      if (text[i] === close) {
        i++;
        return false;
      }
      for (;;) {
        skipSpace();
        if (c === "{") {
          const name = readString();
          if (names.has(name)) repeated = true;
          names.add(name);
          skipSpace();
          i++; // the colon
        }
        if (readValue()) repeated = true;
        skipSpace();
        if (text[i++] === close) return repeated;
      }
    }
    if (c === '"') {
      readString();
      return false;
    }
    while (i < text.length && !",]} \t\n\r".includes(text[i]!)) i++;
    return false;
  };
  return readValue();
}

// ---------------------------------------------------------------------------------------------
// Keys, signing and the two verifiers.

let keys: Record<SigningAlgorithm, TestKey>;
/** Keys of the same algorithms that the resolver does not know: for re-signing with a wrong key. */
let strangers: Record<SigningAlgorithm, TestKey>;

beforeAll(async () => {
  keys = await generateTestKeys();
  strangers = await generateTestKeys();
});

/** One resolver for both verifiers: a kid the resolver does not know is refused alike. */
const resolveKey: KeyResolver = ({ kid }) => {
  const key = Object.values(keys).find((k) => k.kid === kid);
  if (!key) throw new GatehouseError("unknown_key", "no key with this kid");
  return key.publicKey;
};

type Signer = "own" | "stranger" | "der";

function signInput(input: string, key: TestKey, signer: Signer): string {
  const data = Buffer.from(input, "latin1");
  const sig =
    key.algorithm === "EdDSA"
      ? sign(null, data, key.privateKey)
      : key.algorithm === "ES256"
        ? sign("sha256", data, {
            key: key.privateKey,
            dsaEncoding: signer === "der" ? "der" : "ieee-p1363",
          })
        : sign("sha256", data, key.privateKey);
  return sig.toString("base64url");
}

interface Setting {
  readonly algorithms: readonly SigningAlgorithm[];
  readonly skewS: number;
  /** A route's audiences; undefined: the verifier's own. */
  readonly routeAudiences: readonly string[] | undefined;
}

type Outcome = { accepted: true } | { accepted: false; reason: string; broken?: readonly string[] };

async function gatehouseSays(token: string, s: Setting): Promise<Outcome[]> {
  const revocation = createMemoryRevocationState({ stalenessBoundMs: 30_000 });
  revocation.markFresh(NOW_S * 1000);
  const verifier = createVerifier({
    issuer: ISSUER,
    audiences: DEFAULT_AUDIENCES,
    algorithms: s.algorithms,
    clockSkewMs: s.skewS * 1000,
    resolveKey,
    revocation,
    now: () => NOW_S * 1000,
  });
  const requirement = s.routeAudiences === undefined ? undefined : { audiences: s.routeAudiences };
  const once = () =>
    verifier.verify(token, requirement).then(
      (): Outcome => ({ accepted: true }),
      (err: unknown): Outcome => {
        expect(err).toBeInstanceOf(GatehouseError);
        return { accepted: false, reason: (err as GatehouseError).code };
      },
    );
  // Twice: the second answer may come from the verified-token cache and must not differ.
  return [await once(), await once()];
}

async function joseSays(token: string, s: Setting): Promise<Outcome> {
  try {
    const { payload, protectedHeader } = await jwtVerify(
      token,
      (header) => resolveKey({ kid: header.kid as string, alg: header.alg as SigningAlgorithm }),
      {
        issuer: ISSUER,
        audience: [...(s.routeAudiences ?? DEFAULT_AUDIENCES)],
        algorithms: [...s.algorithms],
        typ: "at+jwt",
        currentDate: new Date(NOW_S * 1000),
        clockTolerance: s.skewS,
        requiredClaims: REQUIRED_CLAIMS,
      },
    );
    const verified = { token, header: protectedHeader, payload, skewS: s.skewS };
    const broken = GATEHOUSE_RULES.filter((r) => !r.holds(verified)).map((r) => r.rule);
    return broken.length === 0
      ? { accepted: true }
      : { accepted: false, reason: `rules: ${broken.join("; ")}`, broken };
  } catch (err) {
    return { accepted: false, reason: `jose: ${(err as Error).message}` };
  }
}

// ---------------------------------------------------------------------------------------------
// Generators: a valid token of any algorithm, then mutations of its claims, header, JSON text,
// encoded segments, signing key and finished token.

const REMOVE = Symbol("remove");
/** A placeholder replaced by raw JSON text after stringifying (numbers JSON.stringify cannot write). */
const raw = (text: string) => `\u0000raw:${text}\u0000`;

const time = fc
  .tuple(fc.constantFrom(-60, -30, 0, 30, 60, 600), fc.constantFrom(-1, -0.5, 0, 0.5, 1))
  .map(([b, d]) => NOW_S + b + d);
const anyJson: fc.Arbitrary<unknown> = fc.oneof(
  fc.constant(null),
  fc.boolean(),
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.string({ maxLength: 6 }),
  fc.constant([]),
  fc.constant({}),
  fc.array(fc.string({ maxLength: 4 }), { maxLength: 2 }),
);
const timeValue = fc.oneof(
  { weight: 6, arbitrary: time },
  { weight: 1, arbitrary: time.map((t) => String(t)) },
  { weight: 1, arbitrary: fc.constantFrom(raw("1e400"), raw("-1e400"), raw("1800000000.0"), raw("18e8")) },
  { weight: 1, arbitrary: anyJson },
);
const text = (...values: string[]) => fc.oneof({ weight: 3, arbitrary: fc.constantFrom(...values) }, anyJson);

const CLAIM_VALUES: Record<string, fc.Arbitrary<unknown>> = {
  iss: fc.oneof(text(ISSUER, `${ISSUER}/`, "https://AUTH.example.com", ""), fc.constant([ISSUER])),
  sub: text("user-1", "", " ", "admin"),
  aud: fc.oneof(
    fc.constantFrom<unknown>(
      "orders",
      "billing",
      "",
      "ORDERS",
      ["orders"],
      ["billing", "orders"],
      ["billing"],
      [],
      [""],
      ["orders", ""],
      ["orders", 5],
      ["orders", null],
      [["orders"]],
    ),
    anyJson,
  ),
  exp: timeValue,
  nbf: timeValue,
  iat: timeValue,
  jti: text("0b3c7f2e-6c4d-4a8a-9c1b-1f2e3d4c5b6a", ""),
  client_id: text("web", ""),
  scope: text("orders:read orders:write", "", " orders:read  "),
  sid: text(SID, ""),
  sv: fc.oneof(fc.constantFrom<unknown>(3, 0, -1, 1.5, "3", 2 ** 53, 2 ** 53 - 1), anyJson),
  tenant: text("acme", ""),
};
const claimEdit = fc.oneof(
  {
    weight: 6,
    arbitrary: fc
      .constantFrom(...Object.keys(CLAIM_VALUES))
      .chain((name) =>
        fc.tuple(
          fc.constant(name),
          fc.oneof(
            { weight: 4, arbitrary: CLAIM_VALUES[name]! },
            { weight: 1, arbitrary: fc.constant(REMOVE) },
          ),
        ),
      ),
  },
  { weight: 1, arbitrary: fc.tuple(fc.constantFrom("plan", "act", "cnf", "typ", "__proto__", "x"), anyJson) },
);

const HEADER_VALUES: Record<string, fc.Arbitrary<unknown>> = {
  alg: fc.constantFrom<unknown>(
    "EdDSA",
    "ES256",
    "RS256",
    "HS256",
    "none",
    "PS256",
    "eddsa",
    "Ed25519",
    "",
    5,
  ),
  typ: fc.constantFrom<unknown>(
    "at+jwt",
    "AT+JWT",
    "application/at+jwt",
    "Application/AT+JWT",
    "JWT",
    "jwt",
    "application/jwt",
    "at+jwt ",
    "x/at+jwt",
    "",
    1,
    null,
  ),
  kid: fc.constantFrom<unknown>("unknown-kid", "", 42, null, "other-alg"),
  crit: fc.constantFrom<unknown>(["b64"], [], ["exp"], "b64", ["b64", "b64"]),
  b64: fc.constantFrom<unknown>(true, false, "false"),
  jku: fc.constant("https://evil.example/jwks.json"),
  x5u: fc.constant("https://evil.example/cert.pem"),
  x5c: fc.constant(["MIIB"]),
  cty: fc.constantFrom("JWT", "json"),
  zip: fc.constant("DEF"),
};
const headerEdit = fc
  .constantFrom(...Object.keys(HEADER_VALUES))
  .chain((name) =>
    fc.tuple(
      fc.constant(name),
      fc.oneof({ weight: 4, arbitrary: HEADER_VALUES[name]! }, { weight: 1, arbitrary: fc.constant(REMOVE) }),
    ),
  );

/** Edits of the JSON text of the header or payload, before encoding. */
const jsonEdit = fc.oneof(
  fc.record({
    kind: fc.constant("whitespace" as const),
    at: fc.nat(),
    ws: fc.constantFrom(" ", "\t", "\n", "\r\n"),
  }),
  fc.record({
    kind: fc.constant("duplicate" as const),
    name: fc.constantFrom("sub", "iss", "aud", "exp", "alg", "typ", "kid", "x"),
    value: fc.constantFrom('"admin"', "1", '"orders"', '"EdDSA"', '"at+jwt"'),
    last: fc.boolean(),
  }),
  fc.record({ kind: fc.constant("escape" as const), name: fc.constantFrom("sub", "aud", "alg", "typ") }),
  fc.record({
    kind: fc.constant("bytes" as const),
    bytes: fc.constantFrom([0xff], [0xc0, 0xaf], [0xed, 0xa0, 0x80], [0xe2, 0x82], [0xc3, 0xa9]),
  }),
  fc.record({ kind: fc.constant("flip" as const), at: fc.nat(), mask: fc.integer({ min: 1, max: 255 }) }),
  fc.record({
    kind: fc.constant("wrap" as const),
    before: fc.constantFrom("", "\uFEFF", " "),
    after: fc.constantFrom("", " ", "x", "\n"),
  }),
);
type JsonEdit = typeof jsonEdit extends fc.Arbitrary<infer T> ? T : never;

/** Edits of an encoded segment, before signing (so the signature covers them). */
const segmentEdit = fc.record({
  part: fc.constantFrom(0, 1),
  kind: fc.constantFrom("pad", "whitespace", "standard-alphabet", "trailing-bits", "odd-length"),
  at: fc.nat(),
});
type SegmentEdit = typeof segmentEdit extends fc.Arbitrary<infer T> ? T : never;

/** Edits of the finished token. */
const tokenEdit = fc.record({
  kind: fc.constantFrom(
    "flip",
    "signature-trailing-bits",
    "signature-padding",
    "whitespace",
    "truncate-signature",
    "extra-segment",
    "drop-signature",
  ),
  part: fc.constantFrom(0, 1, 2),
  at: fc.nat(),
  ws: fc.constantFrom(" ", "\n", "\t"),
});
type TokenEdit = typeof tokenEdit extends fc.Arbitrary<infer T> ? T : never;

const tokenCase = fc.record({
  alg: fc.constantFrom(...SIGNING_ALGORITHMS),
  signer: fc.constantFrom<Signer>("own", "own", "own", "own", "stranger", "der"),
  claimEdits: fc.array(claimEdit, { maxLength: 3 }),
  headerEdits: fc.array(headerEdit, { maxLength: 2 }),
  headerJsonEdits: fc.array(jsonEdit, { maxLength: 1 }),
  payloadJsonEdits: fc.array(jsonEdit, { maxLength: 2 }),
  segmentEdits: fc.array(segmentEdit, { maxLength: 1 }),
  tokenEdits: fc.array(tokenEdit, { maxLength: 1 }),
  // About one case in four is left untouched, so both acceptance and refusal are exercised.
  untouched: fc.boolean().chain((b) => (b ? fc.boolean() : fc.constant(false))),
});
type TokenCase = typeof tokenCase extends fc.Arbitrary<infer T> ? T : never;

const setting: fc.Arbitrary<Setting> = fc.record({
  algorithms: fc.subarray([...SIGNING_ALGORITHMS], { minLength: 1 }),
  skewS: fc.constantFrom(0, 30, 60),
  routeAudiences: fc.constantFrom(undefined, ["billing"], ["billing", "orders"]),
});

function applyEdits<T extends Record<string, unknown>>(base: T, edits: readonly [string, unknown][]): T {
  const out: Record<string, unknown> = { ...base };
  for (const [name, value] of edits) {
    if (value === REMOVE) delete out[name];
    else Object.defineProperty(out, name, { value, enumerable: true, writable: true, configurable: true });
  }
  return out as T;
}

function stringify(value: unknown): string {
  return JSON.stringify(value).replace(/"\\u0000raw:([^\\]*)\\u0000"/g, "$1");
}

/** Works on the bytes as latin1 text, so inserted bytes stay exactly what they are. */
function editJson(bytes: Buffer, edit: JsonEdit): Buffer {
  const json = bytes.toString("latin1");
  const latin1 = (text: string) => Buffer.from(text, "latin1");
  switch (edit.kind) {
    case "whitespace": {
      const at = edit.at % (json.length + 1);
      return latin1(json.slice(0, at) + edit.ws + json.slice(at));
    }
    case "duplicate": {
      const member = `"${edit.name}":${edit.value}`;
      return latin1(edit.last ? json.replace(/}$/, `,${member}}`) : json.replace("{", `{${member},`));
    }
    case "escape": {
      const escaped = `"${edit.name[0]}\\u00${edit.name.charCodeAt(1).toString(16)}${edit.name.slice(2)}"`;
      return latin1(json.replace(`"${edit.name}"`, escaped));
    }
    case "bytes":
      return Buffer.concat([latin1('{"note":"'), Buffer.from(edit.bytes), latin1(`",${json.slice(1)}`)]);
    case "flip": {
      const flipped = Buffer.from(bytes);
      const at = edit.at % flipped.length;
      flipped[at] = flipped[at]! ^ edit.mask;
      return flipped;
    }
    case "wrap":
      return Buffer.concat([Buffer.from(edit.before), bytes, Buffer.from(edit.after)]);
  }
}

const B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/** The last character with its unused low bits set: decodes to the same bytes in lenient decoders. */
function withTrailingBits(segment: string): string {
  const unused = segment.length % 4 === 2 ? 4 : segment.length % 4 === 3 ? 2 : 0;
  if (unused === 0) return segment;
  const last = B64URL.indexOf(segment.at(-1)!);
  return segment.slice(0, -1) + B64URL[last | ((1 << unused) - 1)];
}

function editSegment(segment: string, edit: SegmentEdit): string {
  const at = edit.at % (segment.length + 1);
  switch (edit.kind) {
    case "pad":
      return segment + "=".repeat((4 - (segment.length % 4)) % 4 || 1);
    case "whitespace":
      return `${segment.slice(0, at)} ${segment.slice(at)}`;
    case "standard-alphabet":
      return segment.replaceAll("-", "+").replaceAll("_", "/");
    case "trailing-bits":
      return withTrailingBits(segment);
    case "odd-length":
      return segment + "A".repeat((5 - (segment.length % 4)) % 4);
  }
}

function editToken(token: string, edit: TokenEdit): string {
  const parts = token.split(".");
  const part = parts[edit.part]!;
  const at = edit.at % Math.max(part.length, 1);
  switch (edit.kind) {
    case "flip": {
      const c = B64URL[(B64URL.indexOf(part[at] ?? "A") + 1 + (edit.at % 63)) % 64]!;
      parts[edit.part] = part.slice(0, at) + c + part.slice(at + 1);
      return parts.join(".");
    }
    case "signature-trailing-bits":
      parts[2] = withTrailingBits(parts[2]!);
      return parts.join(".");
    case "signature-padding":
      parts[2] = `${parts[2]}==`;
      return parts.join(".");
    case "whitespace":
      parts[edit.part] = part.slice(0, at) + edit.ws + part.slice(at);
      return parts.join(".");
    case "truncate-signature":
      parts[2] = parts[2]!.slice(0, -1 - (edit.at % 8));
      return parts.join(".");
    case "extra-segment":
      return `${token}.AAAA`;
    case "drop-signature":
      return parts.slice(0, 2).join(".");
  }
}

function buildToken(c: TokenCase): string {
  const own = keys[c.alg];
  const base = {
    iss: ISSUER,
    sub: "user-1",
    aud: "orders",
    exp: NOW_S + 540,
    iat: NOW_S - 60,
    jti: "0b3c7f2e-6c4d-4a8a-9c1b-1f2e3d4c5b6a",
    client_id: "web",
    scope: "orders:read orders:write",
    sid: SID,
    sv: 3,
    tenant: "acme",
    plan: "gold",
  };
  const header = { alg: c.alg, typ: "at+jwt", kid: own.kid };
  if (c.untouched) {
    const input = `${Buffer.from(JSON.stringify(header)).toString("base64url")}.${Buffer.from(JSON.stringify(base)).toString("base64url")}`;
    return `${input}.${signInput(input, own, "own")}`;
  }
  const headerEdits = c.headerEdits.map(([name, value]): [string, unknown] =>
    name === "kid" && value === "other-alg"
      ? [name, keys[c.alg === "RS256" ? "EdDSA" : "RS256"].kid]
      : [name, value],
  );
  let headerBytes: Buffer = Buffer.from(stringify(applyEdits(header, headerEdits)));
  for (const e of c.headerJsonEdits) headerBytes = editJson(headerBytes, e);
  let payloadBytes: Buffer = Buffer.from(stringify(applyEdits(base, c.claimEdits)));
  for (const e of c.payloadJsonEdits) payloadBytes = editJson(payloadBytes, e);
  const segments = [headerBytes.toString("base64url"), payloadBytes.toString("base64url")];
  for (const e of c.segmentEdits) segments[e.part] = editSegment(segments[e.part]!, e);
  const input = segments.join(".");
  const signingKey = c.signer === "stranger" ? strangers[c.alg] : own;
  let token = `${input}.${signInput(input, signingKey, c.signer)}`;
  for (const e of c.tokenEdits) token = editToken(token, e);
  return token;
}

describe("the verifier agrees with jose", () => {
  it("accepts a generated or mutated token iff jose accepts it and Gatehouse's extra rules hold", async () => {
    let accepted = 0;
    let refused = 0;
    await fc.assert(
      fc.asyncProperty(tokenCase, setting, async (c, s) => {
        const token = buildToken(c);
        const jose = await joseSays(token, s);
        const [first, again] = await gatehouseSays(token, s);
        expect(again).toEqual(first);
        const why = `jose and rules: ${jose.accepted ? "accept" : jose.reason}; gatehouse: ${first!.accepted ? "accept" : first!.reason}; token ${token}`;
        expect(first!.accepted, why).toBe(jose.accepted);
        if (jose.accepted) accepted++;
        else refused++;
      }),
      { numRuns: 300 },
    );
    // Guards the generator itself: a property where everything is refused proves nothing.
    expect(accepted).toBeGreaterThan(15);
    expect(refused).toBeGreaterThan(75);
  });
});

const EXAMPLE: TokenCase = {
  alg: "EdDSA",
  signer: "own",
  claimEdits: [],
  headerEdits: [],
  headerJsonEdits: [],
  payloadJsonEdits: [],
  segmentEdits: [],
  tokenEdits: [],
  untouched: false,
};
const SETTING: Setting = { algorithms: SIGNING_ALGORITHMS, skewS: 30, routeAudiences: undefined };
const at = 0;

describe("each extra rule refuses a token that jose accepts", () => {
  const examples: [number, Partial<TokenCase>, string][] = [
    [0, { tokenEdits: [{ kind: "signature-padding", part: 2, at, ws: " " }] }, "malformed_token"],
    [0, { tokenEdits: [{ kind: "whitespace", part: 2, at: 5, ws: "\n" }] }, "malformed_token"],
    [1, { tokenEdits: [{ kind: "signature-trailing-bits", part: 2, at, ws: " " }] }, "malformed_token"],
    [
      2,
      { payloadJsonEdits: [{ kind: "duplicate", name: "sub", value: '"admin"', last: false }] },
      "malformed_token",
    ],
    [
      2,
      {
        headerJsonEdits: [{ kind: "duplicate", name: "alg", value: '"EdDSA"', last: true }],
      },
      "malformed_token",
    ],
    [3, { headerJsonEdits: [{ kind: "wrap", before: "\uFEFF", after: "" }] }, "malformed_token"],
    [
      4,
      {
        headerEdits: [
          ["crit", ["b64"]],
          ["b64", true],
        ],
      },
      "malformed_token",
    ],
    [5, { headerEdits: [["jku", "https://evil.example/jwks.json"]] }, "malformed_token"],
    [6, { claimEdits: [["sub", ""]] }, "malformed_token"],
    [6, { claimEdits: [["client_id", 7]] }, "malformed_token"],
    [6, { claimEdits: [["exp", raw("1e400")]] }, "malformed_token"],
    [7, { claimEdits: [["aud", ["orders", 5]]] }, "malformed_token"],
    [8, { claimEdits: [["sv", 1.5]] }, "malformed_token"],
    [
      8,
      {
        claimEdits: [
          ["sid", REMOVE],
          ["sv", "3"],
        ],
      },
      "malformed_token",
    ],
    [8, { claimEdits: [["tenant", 5]] }, "malformed_token"],
    [9, { claimEdits: [["iat", NOW_S + 31]] }, "token_not_yet_valid"],
    [10, { claimEdits: [["act", "svc-a"]] }, "malformed_token"],
    [10, { claimEdits: [["act", { sub: "svc-b", act: { sub: "" } }]] }, "malformed_token"],
  ];

  it.each(examples)("rule %i: %j → %s", async (rule, edits, code) => {
    const token = buildToken({ ...EXAMPLE, ...edits });
    const jose = await joseSays(token, SETTING);
    // The rule at hand broke (a padded signature is not canonical either: both rules break).
    expect(jose).toMatchObject({ accepted: false });
    expect(jose.accepted || jose.broken).toContain(GATEHOUSE_RULES[rule]!.rule);
    const [gatehouse] = await gatehouseSays(token, SETTING);
    expect(gatehouse).toEqual({ accepted: false, reason: code });
  });

  it("and the same token without the edit is accepted by both", async () => {
    const token = buildToken(EXAMPLE);
    expect(await joseSays(token, SETTING)).toEqual({ accepted: true });
    expect(await gatehouseSays(token, SETTING)).toEqual([{ accepted: true }, { accepted: true }]);
  });
});
