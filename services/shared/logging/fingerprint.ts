import { createHash } from "node:crypto";

/**
 * A short, stable, non-reversible name for a token or secret, for logs and audit rows:
 * the first 8 bytes of its SHA-256 in hex. Enough to correlate lines, useless to an attacker.
 */
export function fingerprint(secret: string | Uint8Array): string {
  return createHash("sha256").update(secret).digest("hex").slice(0, 16);
}
