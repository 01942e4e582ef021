import type { GatehouseErrorCode } from "../../shared/errors/codes.ts";

/**
 * What a presented refresh token means, decided from the stored state alone: rotate it, replay the
 * successor it already has (a benign race inside the grace window), treat it as theft (reuse), or
 * refuse it. Pure: the store reads the state and applies the outcome.
 */

export interface StoredRefreshState {
  sessionId: string;
  clientId: string;
  sessionCreatedAt: Date;
  sessionRevokedAt: Date | null;
  idleExpiresAt: Date;
  expiresAt: Date;
  /** When this token was rotated; null while it is the family's live token. */
  usedAt: Date | null;
  /** When the successor of this token was itself rotated (null if none or still live). */
  successorUsedAt: Date | null;
  /** The subject's not-before time from a subject-wide revocation, if any. */
  subjectNotBefore: Date | null;
}

export type RefreshDecision =
  | { kind: "rotate" }
  | { kind: "replay" }
  | { kind: "reuse" }
  | { kind: "reject"; code: GatehouseErrorCode; message: string };

export interface RefreshContext {
  /** The authenticated caller; a refresh token only works for the client it was issued to. */
  callerClientId: string;
  now: Date;
  /** Grace window for repeated refreshes of one token; 0 disables replay. */
  graceMs: number;
}

export function decideRefresh(state: StoredRefreshState | null, ctx: RefreshContext): RefreshDecision {
  // Unknown and foreign tokens answer alike, so a caller cannot probe for other clients' tokens.
  if (state === null || state.clientId !== ctx.callerClientId) {
    return { kind: "reject", code: "invalid_grant", message: "refresh token is not valid" };
  }
  if (state.sessionRevokedAt !== null) {
    return { kind: "reject", code: "session_revoked", message: "the session has been revoked" };
  }
  if (state.subjectNotBefore !== null && state.sessionCreatedAt <= state.subjectNotBefore) {
    return { kind: "reject", code: "session_revoked", message: "the subject's sessions have been revoked" };
  }
  const now = ctx.now.getTime();
  // Reuse is judged before expiry: a rotated token replayed after its family expired is still theft
  // worth an audit row, and the janitor keeps expired families for GATEHOUSE_SESSION_RETENTION so
  // that it can be recognised. A benign grace-window retry of an expired family is merely expired.
  if (state.usedAt !== null) {
    // Already rotated. A retry inside the grace window gets the same successor, unless that
    // successor has been used in turn: then two parties hold the family, which only theft explains.
    const withinGrace = ctx.graceMs > 0 && now - state.usedAt.getTime() <= ctx.graceMs;
    if (!withinGrace || state.successorUsedAt !== null) return { kind: "reuse" };
  }
  if (now >= state.expiresAt.getTime()) {
    return {
      kind: "reject",
      code: "token_expired",
      message: "the session has reached its absolute lifetime",
    };
  }
  if (now >= state.idleExpiresAt.getTime()) {
    return { kind: "reject", code: "token_expired", message: "the session expired after being idle" };
  }
  return state.usedAt === null ? { kind: "rotate" } : { kind: "replay" };
}

/** Scopes for the new access token: the session's, or a subset the caller asked to narrow to. */
export function narrowScopes(
  sessionScopes: readonly string[],
  requested: readonly string[],
): { scopes: string[] } | { error: string } {
  if (requested.length === 0) return { scopes: [...sessionScopes] };
  const granted = new Set(sessionScopes);
  const extra = requested.filter((s) => !granted.has(s));
  if (extra.length > 0) return { error: `scopes not granted to this session: ${extra.join(" ")}` };
  return { scopes: [...new Set(requested)] };
}
