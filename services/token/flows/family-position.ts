import { timingSafeEqual } from "node:crypto";

/**
 * Where a presented v2 refresh token (MAC already checked) stands in its session's family, from the
 * session row alone, which keeps only the live token's hash and the previous generation's:
 * - `live`: the live token;
 * - `previous`: the token the last rotation replaced (a grace replay, or reuse after the window);
 * - `older`: an earlier generation, which only a rotated-away token can carry: reuse. Its random part
 *   can no longer be checked (no hash is kept), so this rests on the MAC alone;
 * - `forged`: a generation the family never reached, or a hash that is not the one stored for its
 *   generation. Answered like an unknown token, and nothing changes: a made-up token naming a real
 *   session can neither rotate nor revoke it.
 */
export type FamilyPosition = "live" | "previous" | "older" | "forged";

export interface FamilyHashes {
  /** The live token's generation (0: the session is still on legacy tokens). */
  generation: number;
  liveHash: Buffer | null;
  previousHash: Buffer | null;
}

export function familyPosition(
  family: FamilyHashes,
  presented: { generation: number; hash: Buffer },
): FamilyPosition {
  if (presented.generation === family.generation)
    return sameHash(family.liveHash, presented.hash) ? "live" : "forged";
  if (presented.generation === family.generation - 1)
    return sameHash(family.previousHash, presented.hash) ? "previous" : "forged";
  if (presented.generation < family.generation - 1) return "older";
  return "forged";
}

function sameHash(stored: Buffer | null, presented: Buffer): boolean {
  return stored !== null && stored.length === presented.length && timingSafeEqual(stored, presented);
}
