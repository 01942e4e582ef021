import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import {
  deriveSuccessor,
  generateRefreshToken,
  hashRefreshToken,
  isRefreshTokenShaped,
  REFRESH_TOKEN_PREFIX,
  refreshTokenShapeProblem,
} from "../../services/token/tokens/refresh-token-format.ts";

describe("refresh token format", () => {
  it("generates prefixed 256-bit tokens that pass the shape check", () => {
    const a = generateRefreshToken();
    expect(a).toMatch(/^gthr_[A-Za-z0-9_-]{43}$/);
    expect(Buffer.from(a.slice(5), "base64url")).toHaveLength(32);
    expect(refreshTokenShapeProblem(a)).toBeNull();
    expect(generateRefreshToken()).not.toBe(a);
  });

  it.each([
    ["", /empty/],
    ["x".repeat(5000), /4 KiB/],
    [`gthx_${"a".repeat(43)}`, /must start with gthr_/],
    [`gthr_${"a".repeat(42)}`, /wrong length/],
    [`gthr_${"a".repeat(44)}`, /wrong length/],
    [`gthr_${"a".repeat(42)}=`, /not base64url/],
    [`gthr_${"a".repeat(42)}é`, /not base64url/],
  ])("rejects %j", (token, problem) => {
    expect(refreshTokenShapeProblem(token)).toMatch(problem);
  });

  it("names each problem exactly", () => {
    expect(refreshTokenShapeProblem("")).toBe("refresh_token is empty");
    expect(refreshTokenShapeProblem("g".repeat(4097))).toBe("refresh_token is longer than 4 KiB");
    expect(refreshTokenShapeProblem(`gthr_${"a".repeat(4091)}`)).toBe("refresh_token has the wrong length");
    expect(refreshTokenShapeProblem("x".repeat(4096))).toBe("refresh_token must start with gthr_");
    expect(refreshTokenShapeProblem(`gthr_${"a".repeat(42)}+`)).toBe("refresh_token is not base64url");
    expect(REFRESH_TOKEN_PREFIX).toBe("gthr_");
  });

  // The shape check alone (the hot path's early refusal) must hold at both ends of the token.
  it.each([
    ["a generated token", () => generateRefreshToken(), true],
    ["every base64url character", () => `gthr_${"Az09-_".repeat(7)}a`, true],
    ["something before the prefix", () => `x${generateRefreshToken()}`, false],
    ["something after the body", () => `${generateRefreshToken()}x`, false],
    ["a newline after the body", () => `${generateRefreshToken()}\n`, false],
    ["a body one character short", () => generateRefreshToken().slice(0, -1), false],
    ["another prefix", () => `gthx_${generateRefreshToken().slice(5)}`, false],
    ["a padded body", () => `${generateRefreshToken().slice(0, -1)}=`, false],
  ])("isRefreshTokenShaped: %s → %s", (_name, make, shaped) => {
    expect(isRefreshTokenShaped(make())).toBe(shaped);
  });

  it("hashes to 32 bytes, deterministically", () => {
    const t = generateRefreshToken();
    expect(hashRefreshToken(t)).toHaveLength(32);
    expect(hashRefreshToken(t).equals(hashRefreshToken(t))).toBe(true);
    expect(hashRefreshToken("abc").toString("hex")).toBe(
      "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
    );
  });

  it("derives the same successor for the same token and key, a different one otherwise", () => {
    const key = randomBytes(32);
    const t = generateRefreshToken();
    const s = deriveSuccessor(t, key);
    expect(refreshTokenShapeProblem(s)).toBeNull();
    expect(deriveSuccessor(t, key)).toBe(s);
    expect(deriveSuccessor(t, randomBytes(32))).not.toBe(s);
    expect(deriveSuccessor(generateRefreshToken(), key)).not.toBe(s);
  });
});
