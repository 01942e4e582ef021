import { randomBytes, randomUUID } from "node:crypto";
import type pg from "pg";
import { hashRefreshToken, REFRESH_TOKEN_PREFIX } from "../../services/token/tokens/refresh-token-format.ts";

/**
 * Sessions as the version before v2 refresh tokens created them, for tests of the upgrade path: a
 * v1 token (`gthr_` + 32 random bytes) and the statement that Issue ran then, kept verbatim as a
 * fixture of the previous schema (session row with none of the refresh_* columns set, one
 * refresh_tokens row per token).
 */
const PREVIOUS_CREATE_SESSION = `WITH s AS (
     INSERT INTO sessions (id, subject, client_id, tenant, scopes, audience, claims, version, signing_kid,
                           created_at, last_used_at, idle_expires_at, expires_at,
                           device_user_agent, device_ip_address, device_name)
     VALUES ($1::uuid, $2::text, $3::text, $4::text, $5::text[], $6::text[], $7::jsonb, 1, $8::text,
             $9::timestamptz, $9::timestamptz, $10::timestamptz, $11::timestamptz, $12::text, $13::text, $14::text)
     RETURNING id
   )
   INSERT INTO refresh_tokens (token_hash, session_id, created_at, expires_at)
   SELECT $15::bytea, s.id, $9::timestamptz, LEAST($10::timestamptz, $11::timestamptz) FROM s
   RETURNING session_id::text AS session_id`;

export interface LegacySession {
  sessionId: string;
  refreshToken: string;
}

/** Issues a session the way the previous version did; `now` defaults to the wall clock. */
export async function createLegacySession(
  pool: pg.Pool,
  s: {
    clientId: string;
    subject: string;
    audience: string[];
    scopes: string[];
    now?: number;
    signingKid?: string;
  },
): Promise<LegacySession> {
  const now = s.now ?? Date.now();
  const sessionId = randomUUID();
  const refreshToken = REFRESH_TOKEN_PREFIX + randomBytes(32).toString("base64url");
  await pool.query(PREVIOUS_CREATE_SESSION, [
    sessionId,
    s.subject,
    s.clientId,
    null,
    s.scopes,
    s.audience,
    null,
    s.signingKid ?? "legacy-kid",
    new Date(now),
    new Date(now + 14 * 86_400_000),
    new Date(now + 90 * 86_400_000),
    null,
    null,
    null,
    hashRefreshToken(refreshToken),
  ]);
  return { sessionId, refreshToken };
}
