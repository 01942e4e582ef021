import { sql } from "./statement.ts";

/**
 * Whether a signature-valid access token has since been revoked, in one round trip.
 * Params: $1 jti, $2 session id or NULL, $3 subject, $4 client id.
 */
export const accessTokenStatus = sql<{
  jti_revoked: boolean;
  session_revoked_at: Date | null;
  session_version: number | null;
  subject_not_before: Date | null;
  client_disabled_at: Date | null;
}>(
  "gh_access_token_status",
  (t) => `SELECT EXISTS (SELECT 1 FROM ${t.revoked_access_tokens} WHERE jti = $1::text) AS jti_revoked,
          (SELECT revoked_at FROM ${t.sessions} WHERE id = $2::uuid) AS session_revoked_at,
          (SELECT version FROM ${t.sessions} WHERE id = $2::uuid) AS session_version,
          (SELECT not_before FROM ${t.subject_revocations} WHERE subject = $3::text) AS subject_not_before,
          (SELECT disabled_at FROM ${t.clients} WHERE id = $4::text) AS client_disabled_at`,
);
