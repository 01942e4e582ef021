import type { FamilyStateRow, RefreshStateRow, SessionRefreshRow } from "../store/token-store.ts";
import { type FamilyPosition, familyPosition } from "./family-position.ts";
import type { StoredRefreshState } from "./refresh-decision.ts";

type SessionPart = Omit<StoredRefreshState, "usedAt" | "successorUsedAt">;

function sessionPart(row: SessionRefreshRow): SessionPart {
  return {
    sessionId: row.session_id,
    clientId: row.client_id,
    sessionCreatedAt: row.session_created_at,
    sessionRevokedAt: row.session_revoked_at,
    idleExpiresAt: row.idle_expires_at,
    expiresAt: row.expires_at,
    subjectNotBefore: row.subject_not_before,
  };
}

/** The refresh decision's view of a stored legacy (v1) token row. */
export function storedRefreshState(row: RefreshStateRow): StoredRefreshState {
  return { ...sessionPart(row), usedAt: row.used_at, successorUsedAt: row.successor_used_at };
}

/**
 * The refresh decision's view of a presented v2 token, from its session's row: null (unknown) for a
 * forged one. A previous-generation token was used when the live one was minted and its successor —
 * the live token — is unused; an older one's successor has been used in turn.
 */
export function familyRefreshState(
  row: FamilyStateRow,
  presented: { generation: number; hash: Buffer },
): { state: StoredRefreshState; position: Exclude<FamilyPosition, "forged"> } | null {
  const position = familyPosition(
    {
      generation: row.refresh_generation,
      liveHash: row.refresh_hash,
      previousHash: row.refresh_previous_hash,
    },
    presented,
  );
  if (position === "forged") return null;
  const rotatedAt = row.refresh_rotated_at;
  const used = {
    live: { usedAt: null, successorUsedAt: null },
    previous: { usedAt: rotatedAt, successorUsedAt: null },
    older: { usedAt: rotatedAt, successorUsedAt: rotatedAt },
  }[position];
  return { state: { ...sessionPart(row), ...used }, position };
}
