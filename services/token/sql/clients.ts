import { auditInsert, outboxInsert } from "./outbox-and-audit.ts";
import { sql } from "./statement.ts";

/** Locks one client row ($1 id) for the rest of the transaction: secret rotations take turns. */
export const lockClientRow = sql<{ id: string }>(
  "gh_lock_client_row",
  (t) => `SELECT id FROM ${t.clients} WHERE id = $1::text FOR UPDATE`,
);

/**
 * Disables the client, revokes its live sessions, queues `client_disabled` and audits it, in one
 * statement. Params: $1 client id, $2 now, $3 reason, $4 event not-before (epoch ms), $5 event
 * relevant-until, $6 actor, $7 request id. One row: sessions revoked, the event id (null when the
 * client was disabled already).
 */
export const disableClient = sql<{ sessions_revoked: number; event_id: string | null }>(
  "gh_disable_client",
  (t) => `WITH c AS (
    UPDATE ${t.clients} SET disabled_at = $2::timestamptz, disabled_reason = $3::text, updated_at = $2::timestamptz
     WHERE id = $1::text AND disabled_at IS NULL
     RETURNING id
  ), s AS (
    UPDATE ${t.sessions} SET revoked_at = $2::timestamptz, revoke_reason = 'client disabled'
     WHERE client_id IN (SELECT id FROM c) AND revoked_at IS NULL
     RETURNING id
  ), o AS (
    ${outboxInsert(t, {
      type: "'client_disabled'",
      payload: "jsonb_build_object('clientId', c.id, 'notBefore', $4::bigint)",
      occurredAt: "$2::timestamptz",
      relevantUntil: "$5::timestamptz",
      from: "c",
    })}
  ), a AS (
    ${auditInsert(t, {
      occurredAt: "$2::timestamptz",
      actor: "$6::text",
      action: "client.disable",
      targetType: "'client'",
      targetId: "$1::text",
      clientId: "$1::text",
      requestId: "$7::text",
      outcome: "success",
      details: `jsonb_build_object('reason', $3::text, 'changed', (SELECT count(*) FROM c) > 0,
                               'sessions_revoked', (SELECT count(*) FROM s),
                               'event_id', (SELECT event_id::text FROM o))`,
    })}
  )
  SELECT (SELECT count(*) FROM s)::int AS sessions_revoked, (SELECT event_id::text FROM o) AS event_id`,
);

/** First half of the clients-file advisory lock key: "ghc" in ASCII. The second half is the schema's hash. */
const CLIENTS_FILE_LOCK_CLASS = 0x676863;

/**
 * The clients-file lock (clients-file/direct-client-admin.ts), per schema. Transaction-scoped: held by
 * a transaction left open on a connection of its own while the file is applied.
 */
export const clientsFileLock = sql<{ locked: true }>(
  "gh_clients_file_lock",
  // The function returns void, which Prisma cannot read: select a constant from it instead.
  (t) =>
    `SELECT true AS locked FROM pg_advisory_xact_lock(${CLIENTS_FILE_LOCK_CLASS}, hashtext(${t.schemaLiteral}))`,
);
