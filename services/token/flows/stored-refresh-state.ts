import type { RefreshStateRow } from "../store/token-store.ts";
import type { StoredRefreshState } from "./refresh-decision.ts";

/** The refresh decision's view of a stored token row. */
export function storedRefreshState(row: RefreshStateRow): StoredRefreshState {
  return {
    sessionId: row.session_id,
    clientId: row.client_id,
    sessionCreatedAt: row.session_created_at,
    sessionRevokedAt: row.session_revoked_at,
    idleExpiresAt: row.idle_expires_at,
    expiresAt: row.expires_at,
    usedAt: row.used_at,
    successorUsedAt: row.successor_used_at,
    subjectNotBefore: row.subject_not_before,
  };
}
