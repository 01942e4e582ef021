import { sql } from "./statement.ts";

/**
 * Issue: a new session holding its first refresh token's state (generation 1, the token's hash and
 * MAC key id), one row in one statement. Params: $1 session id, $2 subject, $3 client id, $4 tenant,
 * $5 scopes, $6 audience, $7 custom claims (jsonb), $8 signing kid, $9 now, $10 idle expiry,
 * $11 absolute expiry, $12 user agent, $13 ip address, $14 device name, $15 refresh-token hash,
 * $16 refresh MAC key id.
 */
export const createSession = sql<{ session_id: string }>(
  "gh_create_session",
  (
    t,
  ) => `INSERT INTO ${t.sessions} (id, subject, client_id, tenant, scopes, audience, claims, version, signing_kid,
                         created_at, last_used_at, idle_expires_at, expires_at,
                         device_user_agent, device_ip_address, device_name,
                         refresh_generation, refresh_hash, refresh_mac_kid)
   VALUES ($1::uuid, $2::text, $3::text, $4::text, $5::text[], $6::text[], $7::jsonb, 1, $8::text,
           $9::timestamptz, $9::timestamptz, $10::timestamptz, $11::timestamptz, $12::text, $13::text, $14::text,
           1, $15::bytea, $16::text)
   RETURNING id::text AS session_id`,
);
