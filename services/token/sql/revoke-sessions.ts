import type { AuditAction } from "../audit/audit-actions.ts";
import { auditInsert, outboxInsert } from "./outbox-and-audit.ts";
import { type SqlStatement, sql, type Tables } from "./statement.ts";

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

const WHERE: Record<SessionSelector, (t: Tables) => string> = {
  session_id: () => "sessions.id = $7::uuid",
  refresh_token: (t) =>
    `sessions.id = (SELECT session_id FROM ${t.refresh_tokens} WHERE token_hash = $7::bytea)`,
  subject: () => "sessions.subject = $7::text",
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
    ? { type: "'session_version'", payload: "jsonb_build_object('sid', s.id::text, 'minVersion', s.version)" }
    : { type: "'session_revoked'", payload: "jsonb_build_object('sid', s.id::text)" };
  const action: AuditAction = accessOnly ? "session.revoke_access" : "session.revoke";
  return sql<RevokedSessionRow>(
    `gh_revoke_sessions_${selector}${accessOnly ? "_access" : ""}`,
    (t) => `WITH s AS (
       UPDATE ${t.sessions} SET ${set}
         FROM ${t.clients} c
        WHERE c.id = sessions.client_id AND ${WHERE[selector](t)} AND sessions.revoked_at IS NULL
          AND ($3::text IS NULL OR sessions.client_id = $3::text)
          ${accessOnly ? CHANGES_SOMETHING : ""}
        RETURNING sessions.id, sessions.version, sessions.subject, sessions.client_id
     ), o AS (
       ${outboxInsert(t, { ...event, occurredAt: "$1::timestamptz", relevantUntil: "$2::timestamptz", from: "s" }, "payload->>'sid' AS sid")}
     ), a AS (
       ${auditInsert(t, {
         occurredAt: "$1::timestamptz",
         actor: "$5::text",
         action,
         targetType: "'session'",
         targetId: "min(s.id::text)",
         subject: "min(s.subject)",
         clientId: "min(s.client_id)",
         requestId: "$6::text",
         outcome: "success",
         details: `jsonb_build_object('reason', $4::text, 'sessions', count(*), 'selector', '${selector}')`,
         from: "FROM s HAVING count(*) > 0",
       })}
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
  (t) => `WITH sr AS (
     INSERT INTO ${t.subject_revocations} (subject, not_before, updated_at) VALUES ($1::text, $2::timestamptz, $2::timestamptz)
     ON CONFLICT (subject) DO UPDATE
       SET not_before = EXCLUDED.not_before, updated_at = EXCLUDED.updated_at
       WHERE subject_revocations.not_before < EXCLUDED.not_before
     RETURNING not_before
   ), o AS (
     ${outboxInsert(t, {
       type: "'subject_revoked'",
       payload:
         "jsonb_build_object('sub', $1::text, 'notBefore', (extract(epoch FROM sr.not_before) * 1000)::bigint)",
       occurredAt: "$2::timestamptz",
       relevantUntil: "$3::timestamptz",
       from: "sr",
     })}
   ), a AS (
     ${auditInsert(t, {
       occurredAt: "$2::timestamptz",
       actor: "$4::text",
       action: "subject.revoke",
       targetType: "'subject'",
       targetId: "$1::text",
       subject: "$1::text",
       requestId: "$5::text",
       outcome: "success",
       details: "jsonb_build_object('reason', $6::text)",
       from: "FROM sr",
     })}
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
  (t) => `WITH r AS (
     INSERT INTO ${t.revoked_access_tokens} (jti, session_id, expires_at, revoked_at)
     VALUES ($1::text, $2::uuid, $3::timestamptz, $4::timestamptz)
     ON CONFLICT (jti) DO NOTHING
     RETURNING jti
   ), o AS (
     ${outboxInsert(t, {
       type: "'token_revoked'",
       payload: "jsonb_build_object('jti', r.jti)",
       occurredAt: "$4::timestamptz",
       relevantUntil: "$3::timestamptz",
       from: "r",
     })}
   ), a AS (
     ${auditInsert(t, {
       occurredAt: "$4::timestamptz",
       actor: "$5::text",
       action: "access_token.revoke",
       targetType: "'access_token'",
       targetId: "r.jti",
       subject: "$8::text",
       clientId: "$9::text",
       requestId: "$6::text",
       outcome: "success",
       details: "jsonb_build_object('reason', $7::text)",
       from: "FROM r",
     })}
   )
   SELECT event_id::text AS event_id FROM o`,
);
