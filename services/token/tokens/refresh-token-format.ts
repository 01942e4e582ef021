import { createHash, createHmac, randomBytes } from "node:crypto";

/**
 * The refresh token's wire format and nothing else: `gthr_` + base64url(32 random bytes). The prefix
 * lets secret scanners find leaked tokens; the store keeps only SHA-256 hashes.
 */
export const REFRESH_TOKEN_PREFIX = "gthr_";
const BODY_BYTES = 32;
const BODY_CHARS = 43; // base64url of 32 bytes, unpadded
const SHAPE = /^gthr_[A-Za-z0-9_-]{43}$/;

export function generateRefreshToken(): string {
  return REFRESH_TOKEN_PREFIX + randomBytes(BODY_BYTES).toString("base64url");
}

/** Why a string cannot be a refresh token, or null when its shape is right. */
export function refreshTokenShapeProblem(token: string): string | null {
  if (token.length === 0) return "refresh_token is empty";
  if (token.length > 4096) return "refresh_token is longer than 4 KiB";
  if (!token.startsWith(REFRESH_TOKEN_PREFIX)) return `refresh_token must start with ${REFRESH_TOKEN_PREFIX}`;
  if (token.length !== REFRESH_TOKEN_PREFIX.length + BODY_CHARS) return "refresh_token has the wrong length";
  if (!SHAPE.test(token)) return "refresh_token is not base64url";
  return null;
}

export function isRefreshTokenShaped(token: string): boolean {
  return SHAPE.test(token);
}

/** The only form in which a refresh token is stored or looked up. */
export function hashRefreshToken(token: string): Buffer {
  return createHash("sha256").update(token).digest();
}

/**
 * The successor of a refresh token, derived rather than random so that a repeated refresh of the
 * same token inside the grace window can return the same successor without storing its plaintext.
 * Unpredictable without the server's key, so a stolen hash does not reveal the successor.
 */
export function deriveSuccessor(token: string, successorKey: Uint8Array): string {
  return (
    REFRESH_TOKEN_PREFIX + createHmac("sha256", successorKey).update(token).digest().toString("base64url")
  );
}
