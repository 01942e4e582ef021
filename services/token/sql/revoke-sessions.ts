import type { AuditAction } from "../audit/audit-actions.ts";
import { type SqlStatement, sql } from "../store/sql-executor.ts";

/**
 * Revoke (or, with access_only, bump the version of) the sessions a Revoke request names, queue one
 * outbox event per affected session and write one audit row — one statement per variant.
 *
 * Common params: $1 now, $2 event relevant-until, $3 owner client id or NULL when the caller may act
 * for every client, $4 reason, $5 actor, $6 request id, $7 the selector value (session id, refresh
 * token hash, or subject); with access_only, $8 the oldest instant a live access token can have been
 * minted (now minus GATEHOUSE_MAX_ACCESS_TOKEN_TTL). Rows: one per affected session with its event id.
 *
 * An access-only bump that would change nothing is skipped: no version bump, no event, no audit row.
 * It changes something only if an access token carrying the session's current version may be live.
 * Such tokens are minted at Issue and at each rotation (both set `last_used_at`) and by grace
 * replays, which come at most a grace period after a rotation (at most 60 s, the settings' bound, or
 * the client's own value if a row says more). So `last_used_at` plus that grace bounds the latest
 * mint at the current version: the bump is needed when that is after the previous bump (or there
 * was none) and after $8 (a token minted then may not have expired yet).
 */
export type SessionSelector = "session_id" | "refresh_token" | "subject";

export interface RevokedSessionRow {
  session_id: string;
  event_id: string;
}

const WHERE: Record<SessionSelector, string> = {
  session_id: "sessions.id = $7::uuid",
  refresh_token: "sessions.id = (SELECT session_id FROM refresh_tokens WHERE token_hash = $7::bytea)",
  subject: "sessions.subject = $7::text",
};

/** The largest refresh grace period client settings allow (refresh_grace_period, in seconds). */
const MAX_GRACE_SECONDS = 60;

/** The latest instant a token at the session's current version can have been minted (see above). */
const LAST_MINT = `sessions.last_used_at + make_interval(secs => GREATEST(c.refresh_grace_seconds, ${MAX_GRACE_SECONDS}))`;
const CHANGES_SOMETHING = `AND (sessions.version_bumped_at IS NULL OR ${LAST_MINT} > sessions.version_bumped_at)
          AND ${LAST_MINT} > $8::timestamptz`;

function build(selector: SessionSelector, accessOnly: boolean): SqlStatement<RevokedSessionRow> {
  const set = accessOnly
    ? "version = sessions.version + 1, version_bumped_at = $1::timestamptz"
    : "revoked_at = $1::timestamptz, revoke_reason = $4::text";
  const event = accessOnly
    ? `'session_version', jsonb_build_object('sid', s.id::text, 'minVersion', s.version)`
    : `'session_revoked', jsonb_build_object('sid', s.id::text)`;
  const action: AuditAction = accessOnly ? "session.revoke_access" : "session.revoke";
  return sql<RevokedSessionRow>(
    `gh_revoke_sessions_${selector}${accessOnly ? "_access" : ""}`,
    `WITH s AS (
       UPDATE sessions SET ${set}
         FROM clients c
        WHERE c.id = sessions.client_id AND ${WHERE[selector]} AND sessions.revoked_at IS NULL
          AND ($3::text IS NULL OR sessions.client_id = $3::text)
          ${accessOnly ? CHANGES_SOMETHING : ""}
        RETURNING sessions.id, sessions.version, sessions.subject, sessions.client_id
     ), o AS (
       INSERT INTO revocation_outbox (type, payload, occurred_at, relevant_until)
       SELECT ${event}, $1::timestamptz, $2::timestamptz FROM s
       RETURNING event_id, payload->>'sid' AS sid
     ), a AS (
       INSERT INTO audit_events (occurred_at, actor, action, target_type, target_id, subject, client_id, request_id, outcome, details)
       SELECT $1::timestamptz, $5::text, '${action}', 'session', min(s.id::text), min(s.subject), min(s.client_id), $6::text, 'success',
              jsonb_build_object('reason', $4::text, 'sessions', count(*), 'selector', '${selector}')
         FROM s HAVING count(*) > 0
     )
     SELECT o.sid AS session_id, o.event_id::text AS event_id FROM o`,
  );
}

const variants = new Map<string, SqlStatement<RevokedSessionRow>>();
for (const selector of ["session_id", "refresh_token", "subject"] as const) {
  for (const accessOnly of [false, true])
    variants.set(`${selector}:${accessOnly}`, build(selector, accessOnly));
}

export function revokeSessions(
  selector: SessionSelector,
  accessOnly: boolean,
): SqlStatement<RevokedSessionRow> {
  return variants.get(`${selector}:${accessOnly}`)!;
}

/**
 * A subject-wide cut-off: every token of the subject issued before $2 is dead, whichever client
 * holds it. Params: $1 subject, $2 not-before, $3 relevant-until, $4 actor, $5 request id, $6 reason.
 * No row (no event, no audit row) when the stored cut-off is at or after $2 already: then it kills
 * every token and session the new one would, so nothing observable changes.
 */
export const revokeSubject = sql<{ event_id: string }>(
  "gh_revoke_subject",
  `WITH sr AS (
     INSERT INTO subject_revocations (subject, not_before, updated_at) VALUES ($1::text, $2::timestamptz, $2::timestamptz)
     ON CONFLICT (subject) DO UPDATE
       SET not_before = EXCLUDED.not_before, updated_at = EXCLUDED.updated_at
       WHERE subject_revocations.not_before < EXCLUDED.not_before
     RETURNING not_before
   ), o AS (
     INSERT INTO revocation_outbox (type, payload, occurred_at, relevant_until)
     SELECT 'subject_revoked',
            jsonb_build_object('sub', $1::text, 'notBefore', (extract(epoch FROM sr.not_before) * 1000)::bigint),
            $2::timestamptz, $3::timestamptz
       FROM sr
     RETURNING event_id
   ), a AS (
     INSERT INTO audit_events (occurred_at, actor, action, target_type, target_id, subject, request_id, outcome, details)
     SELECT $2::timestamptz, $4::text, '${"subject.revoke" satisfies AuditAction}', 'subject', $1::text, $1::text, $5::text, 'success',
            jsonb_build_object('reason', $6::text)
       FROM sr
   )
   SELECT event_id::text AS event_id FROM o`,
);

/**
 * One access token by jti, until it would expire anyway. Params: $1 jti, $2 session id or NULL,
 * $3 token exp, $4 now, $5 actor, $6 request id, $7 reason, $8 subject, $9 token's client id.
 * Returns no row when the jti was already revoked.
 */
export const revokeAccessToken = sql<{ event_id: string }>(
  "gh_revoke_access_token",
  `WITH r AS (
     INSERT INTO revoked_access_tokens (jti, session_id, expires_at, revoked_at)
     VALUES ($1::text, $2::uuid, $3::timestamptz, $4::timestamptz)
     ON CONFLICT (jti) DO NOTHING
     RETURNING jti
   ), o AS (
     INSERT INTO revocation_outbox (type, payload, occurred_at, relevant_until)
     SELECT 'token_revoked', jsonb_build_object('jti', r.jti), $4::timestamptz, $3::timestamptz FROM r
     RETURNING event_id
   ), a AS (
     INSERT INTO audit_events (occurred_at, actor, action, target_type, target_id, subject, client_id, request_id, outcome, details)
     SELECT $4::timestamptz, $5::text, '${"access_token.revoke" satisfies AuditAction}', 'access_token', r.jti, $8::text, $9::text, $6::text, 'success',
            jsonb_build_object('reason', $7::text)
       FROM r
   )
   SELECT event_id::text AS event_id FROM o`,
);
