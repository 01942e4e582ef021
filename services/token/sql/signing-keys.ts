import { auditInsert, outboxInsert } from "./outbox-and-audit.ts";
import { sql } from "./statement.ts";

/** First half of the signing-key advisory lock key: "ghk" in ASCII. The second half is the schema's hash. */
const KEY_LOCK_CLASS = 0x67686b;

/**
 * The signing-key lock, first in every key transition's transaction (keys/key-lock.ts). Per schema, so
 * deployments (and test files) sharing a Postgres database do not wait on each other; transaction-
 * scoped, so it holds behind a transaction pooler.
 */
export const keyLock = sql<{ locked: true }>(
  "gh_key_lock",
  // The function returns void, which Prisma cannot read: select a constant from it instead.
  (t) => `SELECT true AS locked FROM pg_advisory_xact_lock(${KEY_LOCK_CLASS}, hashtext(${t.schemaLiteral}))`,
);

/**
 * Sessions whose latest access token the key signed and that token has not expired: issued at
 * `last_used_at`, living the client's lifetime (1 minute to the service maximum). $1 kid, $2 now,
 * $3 maximum lifetime in seconds.
 */
export const liveSessionsSigned = sql<{ n: number }>(
  "gh_live_sessions_signed",
  (t) => `SELECT count(*)::int AS n
    FROM ${t.sessions} s JOIN ${t.clients} c ON c.id = s.client_id
   WHERE s.signing_kid = $1::text AND s.revoked_at IS NULL
     AND s.last_used_at + make_interval(secs => GREATEST(60, LEAST(c.access_token_ttl_seconds, $3::int))) > $2::timestamptz`,
);

/**
 * Revokes a key, queues `key_revoked` for the sidecars and writes the audit row, in one statement.
 * $1 kid, $2 now, $3 reason, $4 relevant-until, $5 actor, $6 request id, $7 previous status,
 * $8 live sessions signed.
 */
export const revokeSigningKey = sql<{ event_id: string }>(
  "gh_revoke_signing_key",
  (t) => `WITH k AS (
    UPDATE ${t.signing_keys} SET status = 'revoked', revoked_at = $2::timestamptz, revoked_reason = $3::text
     WHERE kid = $1::text AND status <> 'revoked'
     RETURNING kid
  ), o AS (
    ${outboxInsert(t, {
      type: "'key_revoked'",
      payload: "jsonb_build_object('kid', k.kid)",
      occurredAt: "$2::timestamptz",
      relevantUntil: "$4::timestamptz",
      from: "k",
    })}
  ), a AS (
    ${auditInsert(t, {
      occurredAt: "$2::timestamptz",
      actor: "$5::text",
      action: "signing_key.revoke",
      targetType: "'signing_key'",
      targetId: "k.kid",
      requestId: "$6::text",
      outcome: "success",
      details: `jsonb_build_object('reason', $3::text, 'previous_status', $7::text,
                              'live_sessions_signed', $8::int, 'event_id', (SELECT event_id::text FROM o))`,
      from: "FROM k",
    })}
  )
  SELECT event_id::text AS event_id FROM o`,
);
