import type { AuditActorName } from "../audit/audit-actions.ts";
import type { FamilyStateRow, RefreshStateRow, SessionRefreshRow } from "../sql/read-refresh-state.ts";
import type { RevokedSessionRow, SessionSelector } from "../sql/revoke-sessions.ts";
import type { RotatedSessionRow } from "../sql/rotate-if-live.ts";

/**
 * The token service's storage contract for its hot paths, one method per SQL statement. Flows decide;
 * the store only reads and applies. Implemented over `pg` and over embedded PGlite by the same SQL.
 */
export interface NewSession {
  sessionId: string;
  subject: string;
  clientId: string;
  tenant: string | null;
  scopes: string[];
  audience: string[];
  claims: Record<string, unknown> | null;
  signingKid: string;
  now: Date;
  idleExpiresAt: Date;
  expiresAt: Date;
  device: { userAgent: string | null; ipAddress: string | null; name: string | null };
  refreshTokenHash: Buffer;
  /** MAC key the refresh token carries. */
  refreshMacKid: string;
}

export interface Rotation {
  sessionId: string;
  /** The presented token's generation; 0 for a legacy (v1) token, whose state is a refresh_tokens row. */
  presentedGeneration: number;
  presentedHash: Buffer;
  successorHash: Buffer;
  now: Date;
  idleExpiresAt: Date;
  signingKid: string;
  /** Refresh key that derived `successorHash`'s token, recorded so a grace replay derives the same. */
  successorKid: string;
  /** MAC key the successor carries, recorded so a grace replay re-mints the same token. */
  macKid: string;
}

/** null: nothing changed — a concurrent rotation or revoke got there first, or the session is gone. */
type RotationResult = { version: number; refreshExpiresAt: Date } | null;

interface AuditContext {
  /** `client:<id>` of the caller (see audit/audit-actions.ts). */
  actor: AuditActorName;
  requestId: string;
}

export interface SessionRevocation extends AuditContext {
  selector: SessionSelector;
  /** Session id, refresh-token hash or subject, matching the selector. */
  value: string | Buffer;
  accessOnly: boolean;
  /** Limit to this client's sessions; null when the caller may act for every client. */
  ownerClientId: string | null;
  reason: string;
  now: Date;
  relevantUntil: Date;
  /** Now minus the longest access-token lifetime: a token minted before it has expired. */
  oldestLiveMint: Date;
}

interface AccessTokenRevocation extends AuditContext {
  jti: string;
  sessionId: string | null;
  subject: string;
  clientId: string;
  expiresAt: Date;
  reason: string;
  now: Date;
}

export interface AccessTokenStatus {
  jtiRevoked: boolean;
  sessionRevokedAt: Date | null;
  sessionVersion: number | null;
  subjectNotBefore: Date | null;
  clientDisabledAt: Date | null;
}

export interface FastRotation extends Rotation {
  callerClientId: string;
  /** The caller's allow-lists now: the fast path rotates only a session they still admit. */
  allowed: {
    audiences: readonly string[];
    /** null: any tenant. */
    tenants: readonly string[] | null;
    /** Empty: any subject. */
    subjectPrefixes: readonly string[];
  };
}

interface ExchangeRecord extends AuditContext {
  now: Date;
  outcome: "success" | "denied";
  sessionId: string | null;
  subject: string;
  clientId: string;
  details: {
    audience: string[];
    scopes: string[];
    actors: string[];
    subject_token_jti: string;
    /** The new token's; absent when the exchange was denied. */
    jti?: string;
  };
}

export interface TokenStore {
  createSession(s: NewSession): Promise<void>;
  /**
   * Rotates a v2 token in one statement writing one row when it is plainly live; null means "decide
   * the slow way".
   */
  rotateIfLive(r: FastRotation): Promise<RotatedSessionRow | null>;
  /** A legacy (v1) token's state, by its hash. */
  readRefreshState(tokenHash: Buffer): Promise<RefreshStateRow | null>;
  /** A session's v2 refresh state, by the session id a v2 token carries. */
  readFamilyState(sessionId: string): Promise<FamilyStateRow | null>;
  rotate(r: Rotation): Promise<RotationResult>;
  revokeForReuse(
    sessionId: string,
    now: Date,
    relevantUntil: Date,
    audit: AuditContext & { tokenFingerprint: string },
  ): Promise<{ eventId: string } | null>;
  revokeSessions(r: SessionRevocation): Promise<RevokedSessionRow[]>;
  revokeSubject(
    subject: string,
    notBefore: Date,
    relevantUntil: Date,
    audit: AuditContext & { reason: string },
  ): Promise<{ eventId: string } | null>;
  revokeAccessToken(r: AccessTokenRevocation): Promise<{ eventId: string } | null>;
  accessTokenStatus(
    jti: string,
    sessionId: string | null,
    subject: string,
    clientId: string,
  ): Promise<AccessTokenStatus>;
  recordExchange(r: ExchangeRecord): Promise<void>;
}

export type { FamilyStateRow, RefreshStateRow, RevokedSessionRow, SessionRefreshRow };
