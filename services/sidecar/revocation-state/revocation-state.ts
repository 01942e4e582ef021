import type { GatehouseErrorCode } from "../../shared/errors/codes.ts";

/** What the revocation state needs to know about a verified token (a subset of `Identity`). */
export interface RevokableToken {
  readonly jti: string;
  readonly subject: string;
  readonly clientId: string;
  readonly kid: string;
  /** `iat`, epoch seconds. */
  readonly issuedAt: number;
  readonly sessionId?: string | undefined;
  readonly sessionVersion?: number | undefined;
}

export type RevocationCode = Extract<
  GatehouseErrorCode,
  "token_revoked" | "session_revoked" | "subject_revoked" | "client_disabled" | "key_revoked"
>;

/**
 * The verifier's view of revocations: one synchronous lookup per request, and whether the state can
 * still be trusted. What to do when it cannot (fail closed or open) is the verifier's decision.
 */
export interface RevocationState {
  /** The reason this token is revoked, or null. Must be O(1): it runs on every request. */
  check(token: RevokableToken): RevocationCode | null;
  /** True when the state has not been confirmed current within its staleness bound. */
  isStale(nowMs: number): boolean;
}
