import { accessTokenStatus } from "../sql/access-token-status.ts";
import { readFamilyState, readRefreshState } from "../sql/read-refresh-state.ts";
import { recordExchange } from "../sql/record-exchange.ts";
import { revokeForReuse } from "../sql/revoke-for-reuse.ts";
import { revokeAccessToken, revokeSessions, revokeSubject } from "../sql/revoke-sessions.ts";
import { rotateRefreshToken } from "../sql/rotate-refresh-token.ts";
import { rotateSession, rotationParams } from "../sql/rotate-session.ts";
import { createRotationBatcher } from "./rotation-batcher.ts";
import { createSessionInsertBatcher } from "./session-insert-batcher.ts";
import type { SqlExecutor } from "./sql-executor.ts";
import type { TokenStore } from "./token-store.ts";

/**
 * {@link TokenStore} over one SQL executor: each method is exactly one statement, one round trip;
 * createSession's statements also carry the sessions of concurrent Issue calls, and rotateIfLive's
 * the rotations of concurrent Refresh calls (see session-insert-batcher.ts, rotation-batcher.ts).
 */
export function createSqlTokenStore(db: SqlExecutor): TokenStore {
  return {
    createSession: createSessionInsertBatcher(db),

    rotateIfLive: createRotationBatcher(db),

    async readRefreshState(tokenHash) {
      const rows = await db.query(readRefreshState, [tokenHash]);
      return rows[0] ?? null;
    },

    async readFamilyState(sessionId) {
      const rows = await db.query(readFamilyState, [sessionId]);
      return rows[0] ?? null;
    },

    async rotate(r) {
      const rows =
        r.presentedGeneration === 0
          ? await db.query(rotateRefreshToken, [
              r.sessionId,
              r.presentedHash,
              r.successorHash,
              r.now,
              r.idleExpiresAt,
              r.signingKid,
              r.successorKid,
              r.macKid,
            ])
          : await db.query(rotateSession, rotationParams(r));
      const row = rows[0];
      return row ? { version: row.version, refreshExpiresAt: row.expires_at } : null;
    },

    async revokeForReuse(sessionId, now, relevantUntil, audit) {
      const rows = await db.query(revokeForReuse, [
        sessionId,
        now,
        relevantUntil,
        audit.actor,
        audit.requestId,
        audit.tokenFingerprint,
      ]);
      return rows[0] ? { eventId: rows[0].event_id } : null;
    },

    revokeSessions(r) {
      return db.query(revokeSessions(r.selector, r.accessOnly), [
        r.now,
        r.relevantUntil,
        r.ownerClientId,
        r.reason,
        r.actor,
        r.requestId,
        r.value,
        ...(r.accessOnly ? [r.oldestLiveMint] : []),
      ]);
    },

    async revokeSubject(subject, notBefore, relevantUntil, audit) {
      const rows = await db.query(revokeSubject, [
        subject,
        notBefore,
        relevantUntil,
        audit.actor,
        audit.requestId,
        audit.reason,
      ]);
      return rows[0] ? { eventId: rows[0].event_id } : null;
    },

    async revokeAccessToken(r) {
      const rows = await db.query(revokeAccessToken, [
        r.jti,
        r.sessionId,
        r.expiresAt,
        r.now,
        r.actor,
        r.requestId,
        r.reason,
        r.subject,
        r.clientId,
      ]);
      return rows[0] ? { eventId: rows[0].event_id } : null;
    },

    async accessTokenStatus(jti, sessionId, subject, clientId) {
      const rows = await db.query(accessTokenStatus, [jti, sessionId, subject, clientId]);
      const row = rows[0]!;
      return {
        jtiRevoked: row.jti_revoked,
        sessionRevokedAt: row.session_revoked_at,
        sessionVersion: row.session_version,
        subjectNotBefore: row.subject_not_before,
        clientDisabledAt: row.client_disabled_at,
      };
    },

    async recordExchange(r) {
      await db.query(recordExchange, [
        r.now,
        r.actor,
        r.requestId,
        r.sessionId,
        r.subject,
        r.clientId,
        JSON.stringify(r.details),
        r.outcome,
      ]);
    },
  };
}
