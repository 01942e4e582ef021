import { sql } from "./statement.ts";

/**
 * Issue for several sessions at once: {@link createSession}'s insert for every row of $1, a JSON
 * array of objects with the members named in the record definition below (timestamps as ISO strings,
 * the refresh-token hash as hex). One statement, so one transaction and one commit for the whole
 * group; a row that fails fails them all (the batcher then retries them one by one).
 */
export const createSessions = sql<never>(
  "gh_create_sessions",
  (
    t,
  ) => `INSERT INTO ${t.sessions} (id, subject, client_id, tenant, scopes, audience, claims, version, signing_kid,
                         created_at, last_used_at, idle_expires_at, expires_at,
                         device_user_agent, device_ip_address, device_name,
                         refresh_generation, refresh_hash, refresh_mac_kid)
   SELECT id, subject, client_id, tenant, scopes, audience, claims, 1, signing_kid,
          now, now, idle_expires_at, expires_at, device_user_agent, device_ip_address, device_name,
          1, decode(refresh_token_hash, 'hex'), refresh_mac_kid
     FROM jsonb_to_recordset($1::jsonb) AS r(
       id uuid, subject text, client_id text, tenant text, scopes text[], audience text[], claims jsonb,
       signing_kid text, now timestamptz, idle_expires_at timestamptz, expires_at timestamptz,
       device_user_agent text, device_ip_address text, device_name text, refresh_token_hash text,
       refresh_mac_kid text)`,
);
