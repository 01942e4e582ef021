import { describe, expect, it } from "vitest";
import { GatehouseError } from "../../services/shared/errors/gatehouse-error.ts";
import { checkHeader, createHeaderReader } from "../../services/sidecar/verifier/header-checks.ts";
import { hasDuplicateKeys } from "../../services/sidecar/verifier/json-duplicates.ts";
import { decodeSegment, MAX_TOKEN_LENGTH, splitToken } from "../../services/sidecar/verifier/token-parts.ts";

/** The verifier's parsing steps on their own, one rule per row, asserting the code and the reason. */

const b64 = (text: string | Buffer) => Buffer.from(text).toString("base64url");
const ALLOWED = new Set(["EdDSA", "ES256"]);

function failure(run: () => unknown): string {
  try {
    run();
    return "ok";
  } catch (err) {
    expect(err).toBeInstanceOf(GatehouseError);
    return `${(err as GatehouseError).code}: ${(err as Error).message}`;
  }
}

describe("hasDuplicateKeys", () => {
  it.each<[string, boolean]>([
    ['{"a":1,"b":2}', false],
    ['{"a":1,"a":2}', true],
    ['{"a" :1, "a"\t:2}', true],
    ['{"a"\n:1,"a"\r\n:2}', true],
    ['{"a":{"b":1,"b":2}}', true],
    ['{"a":[{"b":1},{"b":2}]}', false],
    ['{"a":[{"b":1,"b":2}]}', true],
    ['{"a":"x:y","b":"\\"a\\":"}', false],
    ['{"a\\\\":1,"a":2}', false],
    ['{"s\\u0075b":1,"sub":2}', true],
    ['{"a":["b", "c"]}', false],
    ['{"a":"b" , "c":"d"}', false],
    ["{}", false],
    // Each kind of whitespace between a name and its colon, and a run of it, on a lone name: the
    // name must still count (a duplicate would make the count wrong either way).
    ['{"a" :1}', false],
    ['{"a"\t:1}', false],
    ['{"a"\n:1}', false],
    ['{"a"\r:1}', false],
    ['{"a" \t\r\n :1}', false],
    // Escaped quotes: an odd run of backslashes escapes the quote, an even one does not.
    ['{"a\\"":1}', false],
    ['{"a\\"":1,"a\\"":2}', true],
    ['{"a\\\\\\"":1,"b":2}', false],
    ['{"a":"\\\\","b":"\\\\"}', false],
    ['{"x\\\\":"\\"b\\":","b":1}', false],
    ['{"a\\"b":1}', false],
    // A top-level string: the closing quote at index 1 must not read as "unterminated".
    ['""', false],
    // Values that are not members: strings (their characters are no members), numbers, null.
    ['{"a":"bcd"}', false],
    ['{"a":null,"b":7,"c":true}', false],
    ['[{"a":1},{"a":2}]', false],
    ['[{"a":1,"a":2}]', true],
    ['{"a":[[{"b":1,"b":2}]]}', true],
  ])("%s → %s", (text, repeated) => {
    expect(hasDuplicateKeys(text, JSON.parse(text))).toBe(repeated);
  });
});

describe("decodeSegment and splitToken", () => {
  const header = b64('{"alg":"EdDSA"}');
  const payload = b64('{"sub":"a"}');
  const sig = b64(Buffer.alloc(64, 1));

  it.each<[string, string, string]>([
    ["a JSON object", b64('{"a":1}'), "ok"],
    [
      "length 1 mod 4",
      `${b64('{"a":1}')}AAAAA`.slice(0, 13),
      "malformed_token: payload is not valid base64url",
    ],
    ["not UTF-8", b64(Buffer.from([0x7b, 0xff, 0x7d])), "malformed_token: payload is not UTF-8"],
    ["not JSON", b64("{a:1}"), "malformed_token: payload is not JSON"],
    ["an array", b64("[1]"), "malformed_token: payload is not a JSON object"],
    ["null", b64("null"), "malformed_token: payload is not a JSON object"],
    ["a string", b64('"a"'), "malformed_token: payload is not a JSON object"],
    ["a repeated name", b64('{"a":1,"a":1}'), "malformed_token: payload repeats a member name"],
  ])("payload segment: %s → %s", (_name, segment, expected) => {
    expect(failure(() => decodeSegment(segment, "payload"))).toBe(expected);
  });

  it("splits a compact JWS into its parts", () => {
    const parts = splitToken(`${header}.${payload}.${sig}`);
    expect(parts).toEqual({
      encodedHeader: header,
      payload: { sub: "a" },
      signingInput: `${header}.${payload}`,
      signature: Buffer.alloc(64, 1),
    });
  });

  it.each<[string, string, string]>([
    ["two segments", `${header}.${payload}`, "segments"],
    ["four segments", `${header}.${payload}.${sig}.${sig}`, "segments"],
    ["a leading character", ` ${header}.${payload}.${sig}`, "segments"],
    ["a trailing character", `${header}.${payload}.${sig}=`, "segments"],
    ["an empty header", `.${payload}.${sig}`, "segments"],
    ["a non-canonical signature", `${header}.${payload}.${sig.slice(0, -1)}B`, "canonical"],
    ["too long", `${header}.${b64("x".repeat(MAX_TOKEN_LENGTH))}.${sig}`, "longer than 8192"],
  ])("refuses %s", (_name, token, reason) => {
    expect(failure(() => splitToken(token))).toMatch(new RegExp(`^malformed_token: .*${reason}`));
  });

  it("takes a token of exactly the maximum length to the next check", () => {
    const filler = "A".repeat(MAX_TOKEN_LENGTH - header.length - sig.length - 2);
    expect(failure(() => splitToken(`${header}.${filler}.${sig}`))).not.toMatch(/longer than/);
  });
});

describe("checkHeader: one rule per row, in order", () => {
  const h = (overrides: Record<string, unknown>) => {
    const out: Record<string, unknown> = { alg: "EdDSA", typ: "at+jwt", kid: "k1", ...overrides };
    for (const [k, v] of Object.entries(out)) if (v === undefined) delete out[k];
    return out;
  };
  it.each<[string, Record<string, unknown>, string]>([
    ["a good header", {}, "ok"],
    ["typ in capitals", { typ: "AT+JWT" }, "ok"],
    ["typ as a media type", { typ: "Application/At+Jwt" }, "ok"],
    ["an unknown member", { cty: "x", b64: false }, "ok"],
    ["a kid of 256 characters", { kid: "k".repeat(256) }, "ok"],
    ["alg not allowed here", { alg: "RS256" }, 'unsupported_algorithm: algorithm "RS256" is not accepted'],
    ["alg missing", { alg: undefined }, "unsupported_algorithm: algorithm (none) is not accepted"],
    ["alg a number", { alg: 1 }, "unsupported_algorithm: algorithm (number) is not accepted"],
    ["crit", { crit: ["b64"], b64: true }, "malformed_token: header has crit: no extension is supported"],
    ["jku", { jku: "https://x" }, "malformed_token: header member jku is not accepted"],
    ["jwk", { jwk: {} }, "malformed_token: header member jwk is not accepted"],
    ["x5u", { x5u: "https://x" }, "malformed_token: header member x5u is not accepted"],
    ["x5c", { x5c: [] }, "malformed_token: header member x5c is not accepted"],
    ["typ JWT", { typ: "JWT" }, 'wrong_token_type: token type "JWT" is not at+jwt'],
    [
      "typ another media type",
      { typ: "text/at+jwt" },
      'wrong_token_type: token type "text/at+jwt" is not at+jwt',
    ],
    ["typ missing", { typ: undefined }, "wrong_token_type: token type (none) is not at+jwt"],
    ["typ long", { typ: "x".repeat(40) }, `wrong_token_type: token type "${"x".repeat(32)}…" is not at+jwt`],
    ["kid missing", { kid: undefined }, "unknown_key: token has no usable kid"],
    ["kid empty", { kid: "" }, "unknown_key: token has no usable kid"],
    ["kid a number", { kid: 7 }, "unknown_key: token has no usable kid"],
    ["kid of 257 characters", { kid: "k".repeat(257) }, "unknown_key: token has no usable kid"],
  ])("%s → %s", (_name, overrides, expected) => {
    expect(failure(() => checkHeader(h(overrides), ALLOWED))).toBe(expected);
  });

  it("answers with the alg and kid, frozen", () => {
    const checked = checkHeader(h({ alg: "ES256", kid: "k2" }), ALLOWED);
    expect(checked).toEqual({ alg: "ES256", kid: "k2" });
    expect(Object.isFrozen(checked)).toBe(true);
  });

  it("remembers good headers, never bad ones, and starts over when full", () => {
    const read = createHeaderReader(ALLOWED);
    const good = b64(JSON.stringify(h({})));
    const first = read(good);
    expect(read(good)).toBe(first);
    const bad = b64(JSON.stringify(h({ typ: "JWT" })));
    expect(failure(() => read(bad))).toMatch(/^wrong_token_type/);
    expect(failure(() => read(bad))).toMatch(/^wrong_token_type/);
    for (let i = 0; i < 64; i++) read(b64(JSON.stringify(h({ kid: `other-${i}` }))));
    // 65 distinct good headers: the memo started over, so the first one is decoded afresh.
    const again = read(good);
    expect(again).toEqual(first);
    expect(again).not.toBe(first);
  });
});
