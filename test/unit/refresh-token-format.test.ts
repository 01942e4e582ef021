import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import {
  deriveSuccessor,
  generateRefreshToken,
  hashRefreshToken,
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

  it("hashes to 32 bytes, deterministically", () => {
    const t = generateRefreshToken();
    expect(hashRefreshToken(t)).toHaveLength(32);
    expect(hashRefreshToken(t).equals(hashRefreshToken(t))).toBe(true);
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
