import { createHash, createHmac, randomBytes, randomUUID } from "node:crypto";
import { describe, expect, it } from "vitest";
import {
  deriveNextRefreshToken,
  deriveSuccessor,
  generateRefreshToken,
  hashRefreshToken,
  isRefreshTokenShaped,
  parseRefreshToken,
  REFRESH_TOKEN_PREFIX,
  refreshTokenMacValid,
  refreshTokenShapeProblem,
} from "../../services/token/tokens/refresh-token-format.ts";

const MAC = { kid: "rk-mac-0123456789abcdef", key: randomBytes(32) };
const SID = "0b7c5d2e-1f3a-4b6c-8d9e-0a1b2c3d4e5f";
const token = () => generateRefreshToken(SID, MAC);
/** A v1 token as the previous version minted it: 32 random bytes. */
const legacyToken = () => REFRESH_TOKEN_PREFIX + randomBytes(32).toString("base64url");

function v2(t: string) {
  const parsed = parseRefreshToken(t);
  if (!("version" in parsed) || parsed.version !== 2)
    throw new Error(`not a v2 token: ${JSON.stringify(parsed)}`);
  return parsed;
}

describe("refresh token format", () => {
  it("generates prefixed v2 tokens carrying the session, generation 1, 256 random bits and the MAC kid", () => {
    const a = token();
    expect(a).toMatch(/^gthr_[A-Za-z0-9_-]+$/);
    expect(refreshTokenShapeProblem(a)).toBeNull();
    expect(v2(a)).toMatchObject({ version: 2, sessionId: SID, generation: 1, kid: MAC.kid });
    // version + session id + generation + random + kid length + kid + MAC
    expect(Buffer.from(a.slice(5), "base64url")).toHaveLength(1 + 16 + 4 + 32 + 1 + MAC.kid.length + 32);
    expect(token()).not.toBe(a);
  });

  // The wire bytes, built here independently of the module: digests travel through it as strings
  // (refresh-token-format.ts, `mac`), and a wrong encoding would change bytes ≥ 0x80 only.
  it("derives exactly HMAC-SHA256 successors with an HMAC-SHA256 MAC, and hashes with SHA-256", () => {
    const successorKey = Buffer.alloc(32, 0xa5);
    const macKey = { kid: "rk-mac-1", key: Buffer.alloc(32, 0xf3) };
    const presented = `${REFRESH_TOKEN_PREFIX}${"_".repeat(43)}`;
    const random = createHmac("sha256", successorKey).update(presented).digest();
    const signed = Buffer.concat([
      Buffer.from([0x02]),
      Buffer.from(SID.replaceAll("-", ""), "hex"),
      Buffer.from([0, 0, 0, 8]),
      random,
      Buffer.from([macKey.kid.length]),
      Buffer.from(macKey.kid, "latin1"),
    ]);
    const expected = Buffer.concat([signed, createHmac("sha256", macKey.key).update(signed).digest()]);
    const next = deriveNextRefreshToken(presented, { sessionId: SID, generation: 7 }, successorKey, macKey);
    expect(next).toBe(REFRESH_TOKEN_PREFIX + expected.toString("base64url"));
    expect(random.some((b) => b >= 0x80)).toBe(true);
    expect(refreshTokenMacValid(v2(next), macKey.key)).toBe(true);
    expect(hashRefreshToken(next).equals(createHash("sha256").update(next).digest())).toBe(true);
  });

  it("never hands out the same random part twice, across refills of its random pool", () => {
    // 1,000 tokens span several 128-token refills; the random part is bytes 21-52 of the body.
    const randoms = new Set(
      Array.from({ length: 1000 }, () =>
        Buffer.from(token().slice(5), "base64url").subarray(21, 53).toString("hex"),
      ),
    );
    expect(randoms.size).toBe(1000);
    expect(randoms.has("00".repeat(32))).toBe(false);
  });

  it("still accepts the shape of v1 tokens minted before v2", () => {
    expect(parseRefreshToken(legacyToken())).toEqual({ version: 1 });
  });

  it.each([
    ["", /empty/],
    ["x".repeat(5000), /4 KiB/],
    [`gthx_${"a".repeat(43)}`, /must start with gthr_/],
    [`gthr_${"a".repeat(42)}`, /wrong length/],
    [`gthr_${"a".repeat(44)}`, /wrong length/],
    [`gthr_${"a".repeat(42)}=`, /not base64url/],
    [`gthr_${"a".repeat(42)}é`, /not base64url/],
  ])("rejects %j", (t, problem) => {
    expect(refreshTokenShapeProblem(t)).toMatch(problem);
  });

  it("names each problem exactly", () => {
    expect(refreshTokenShapeProblem("")).toBe("refresh_token is empty");
    expect(refreshTokenShapeProblem("g".repeat(4097))).toBe("refresh_token is longer than 4 KiB");
    expect(refreshTokenShapeProblem(`gthr_${"a".repeat(4091)}`)).toBe("refresh_token has the wrong length");
    expect(refreshTokenShapeProblem("x".repeat(4096))).toBe("refresh_token must start with gthr_");
    expect(refreshTokenShapeProblem(`gthr_${"a".repeat(42)}+`)).toBe("refresh_token is not base64url");
    expect(REFRESH_TOKEN_PREFIX).toBe("gthr_");
  });

  /** A v2 body with one byte range replaced, re-encoded (the MAC no longer matters for the shape). */
  const tampered = (at: number, bytes: number[], cut?: number) => {
    const body = Buffer.from(token().slice(5), "base64url");
    Buffer.from(bytes).copy(body, at);
    return REFRESH_TOKEN_PREFIX + body.subarray(0, cut ?? body.length).toString("base64url");
  };
  it.each([
    ["another version byte", tampered(0, [0x03]), "refresh_token has the wrong length"],
    ["a kid length past the end", tampered(53, [200]), "refresh_token has the wrong length"],
    ["a kid length of 0", tampered(53, [0]), "refresh_token has the wrong length"],
    ["a kid with a space", tampered(54, [0x20]), "refresh_token has the wrong length"],
    ["the MAC cut short", tampered(0, [], 100), "refresh_token has the wrong length"],
    ["generation 0", tampered(17, [0, 0, 0, 0]), "refresh_token has an impossible generation"],
    ["generation 2^31", tampered(17, [0x80, 0, 0, 0]), "refresh_token has an impossible generation"],
  ])("refuses a v2 body with %s", (_name, t, problem) => {
    expect(refreshTokenShapeProblem(t)).toBe(problem);
  });

  it("refuses a non-canonical encoding of a genuine body (same MAC, another hash)", () => {
    const t = token();
    const last = t.at(-1)!;
    // The body is 109 bytes: the last character carries 2 spare bits that decoding ignores.
    const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const twin = t.slice(0, -1) + alphabet[alphabet.indexOf(last) ^ 1];
    expect(Buffer.from(twin.slice(5), "base64url")).toEqual(Buffer.from(t.slice(5), "base64url"));
    expect(refreshTokenShapeProblem(twin)).toBe("refresh_token has the wrong length");
  });

  // The shape check alone (the hot path's early refusal) must hold at both ends of the token.
  it.each([
    ["a generated token", () => token(), true],
    ["a v1 token", () => legacyToken(), true],
    ["every base64url character", () => `gthr_${"Az09-_".repeat(7)}a`, true],
    ["something before the prefix", () => `x${token()}`, false],
    ["something after the body", () => `${token()}x`, false],
    ["a newline after the body", () => `${token()}\n`, false],
    ["a body one character short", () => token().slice(0, -1), false],
    ["another prefix", () => `gthx_${token().slice(5)}`, false],
    ["a padded body", () => `${token().slice(0, -1)}=`, false],
  ])("isRefreshTokenShaped: %s → %s", (_name, make, shaped) => {
    expect(isRefreshTokenShaped(make())).toBe(shaped);
  });

  it("verifies the MAC only under the key that made it, and only for the bytes it covers", () => {
    const t = token();
    expect(refreshTokenMacValid(v2(t), MAC.key)).toBe(true);
    expect(refreshTokenMacValid(v2(t), randomBytes(32))).toBe(false);
    // Another session id, generation or random part under the same MAC: refused.
    for (const at of [1, 17, 30]) {
      const body = Buffer.from(t.slice(5), "base64url");
      body[at]! ^= 1;
      const changed = REFRESH_TOKEN_PREFIX + body.toString("base64url");
      expect(refreshTokenShapeProblem(changed)).toBeNull();
      expect(refreshTokenMacValid(v2(changed), MAC.key)).toBe(false);
    }
  });

  it("hashes to 32 bytes, deterministically", () => {
    const t = token();
    expect(hashRefreshToken(t)).toHaveLength(32);
    expect(hashRefreshToken(t).equals(hashRefreshToken(t))).toBe(true);
    expect(hashRefreshToken("abc").toString("hex")).toBe(
      "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
    );
  });

  it("derives the next generation deterministically from the token and the successor key", () => {
    const key = randomBytes(32);
    const t = token();
    const s = deriveNextRefreshToken(t, { sessionId: SID, generation: 1 }, key, MAC);
    expect(v2(s)).toMatchObject({ sessionId: SID, generation: 2, kid: MAC.kid });
    expect(refreshTokenMacValid(v2(s), MAC.key)).toBe(true);
    expect(deriveNextRefreshToken(t, { sessionId: SID, generation: 1 }, key, MAC)).toBe(s);
    expect(deriveNextRefreshToken(t, { sessionId: SID, generation: 1 }, randomBytes(32), MAC)).not.toBe(s);
    expect(deriveNextRefreshToken(token(), { sessionId: SID, generation: 1 }, key, MAC)).not.toBe(s);
    // A legacy token's successor opens generation 1 of its session.
    const other = randomUUID();
    expect(
      v2(deriveNextRefreshToken(legacyToken(), { sessionId: other, generation: 0 }, key, MAC)),
    ).toMatchObject({ sessionId: other, generation: 1 });
  });

  it("derives v1 successors as the previous version did, for replays of its rotations", () => {
    const key = randomBytes(32);
    const t = legacyToken();
    const s = deriveSuccessor(t, key);
    expect(parseRefreshToken(s)).toEqual({ version: 1 });
    expect(deriveSuccessor(t, key)).toBe(s);
    expect(deriveSuccessor(t, randomBytes(32))).not.toBe(s);
  });
});
