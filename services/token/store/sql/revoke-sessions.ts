import type { AuditAction } from "../../audit/audit-actions.ts";
import { type SqlStatement, sql } from "../sql-executor.ts";

/**
 * Revoke (or, with access_only, bump the version of) the sessions a Revoke request names, queue one
 * outbox event per affected session and write one audit row — one statement per variant.
 *
 * Common params: $1 now, $2 event relevant-until, $3 owner client id or NULL when the caller may act
 * for every client, $4 reason, $5 actor, $6 request id, $7 the selector value (session id, refresh
 * token hash, or subject). Rows: one per affected session with its event id.
 */
export type SessionSelector = "session_id" | "refresh_token" | "subject";

export interface RevokedSessionRow {
  session_id: string;
  event_id: string;
}

const WHERE: Record<SessionSelector, string> = {
  session_id: "id = $7::uuid",
  refresh_token: "id = (SELECT session_id FROM refresh_tokens WHERE token_hash = $7::bytea)",
  subject: "subject = $7::text",
};

function build(selector: SessionSelector, accessOnly: boolean): SqlStatement<RevokedSessionRow> {
  const set = accessOnly ? "version = version + 1" : "revoked_at = $1::timestamptz, revoke_reason = $4::text";
  const event = accessOnly
    ? `'session_version', jsonb_build_object('sid', s.id::text, 'minVersion', s.version)`
    : `'session_revoked', jsonb_build_object('sid', s.id::text)`;
  const action: AuditAction = accessOnly ? "session.revoke_access" : "session.revoke";
  return sql<RevokedSessionRow>(
    `gh_revoke_sessions_${selector}${accessOnly ? "_access" : ""}`,
    `WITH s AS (
       UPDATE sessions SET ${set}
        WHERE ${WHERE[selector]} AND revoked_at IS NULL AND ($3::text IS NULL OR client_id = $3::text)
        RETURNING id, version, subject, client_id
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
 */
export const revokeSubject = sql<{ event_id: string }>(
  "gh_revoke_subject",
  `WITH sr AS (
     INSERT INTO subject_revocations (subject, not_before, updated_at) VALUES ($1::text, $2::timestamptz, $2::timestamptz)
     ON CONFLICT (subject) DO UPDATE
       SET not_before = GREATEST(subject_revocations.not_before, EXCLUDED.not_before), updated_at = EXCLUDED.updated_at
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
     VALUES ($2::timestamptz, $4::text, '${"subject.revoke" satisfies AuditAction}', 'subject', $1::text, $1::text, $5::text, 'success',
             jsonb_build_object('reason', $6::text))
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
