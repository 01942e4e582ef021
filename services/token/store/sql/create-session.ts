import { sql } from "../sql-executor.ts";

/**
 * Issue: a new session and its first refresh token, in one statement (so one implicit transaction
 * and one round trip). Params: $1 session id, $2 subject, $3 client id, $4 tenant, $5 scopes,
 * $6 audience, $7 custom claims (jsonb), $8 signing kid, $9 now, $10 idle expiry, $11 absolute
 * expiry, $12 user agent, $13 ip address, $14 device name, $15 refresh-token hash.
 */
export const createSession = sql<{ session_id: string }>(
  "gh_create_session",
  `WITH s AS (
     INSERT INTO sessions (id, subject, client_id, tenant, scopes, audience, claims, version, signing_kid,
                           created_at, last_used_at, idle_expires_at, expires_at,
                           device_user_agent, device_ip_address, device_name)
     VALUES ($1::uuid, $2::text, $3::text, $4::text, $5::text[], $6::text[], $7::jsonb, 1, $8::text,
             $9::timestamptz, $9::timestamptz, $10::timestamptz, $11::timestamptz, $12::text, $13::text, $14::text)
     RETURNING id
   )
   INSERT INTO refresh_tokens (token_hash, session_id, created_at, expires_at)
   SELECT $15::bytea, s.id, $9::timestamptz, LEAST($10::timestamptz, $11::timestamptz) FROM s
   RETURNING session_id::text AS session_id`,
);
