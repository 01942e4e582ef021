import { sql } from "../sql-executor.ts";
import { ROTATED_SESSION_COLUMNS, type RotatedSessionRow, rotateIfLiveWhere } from "./rotate-if-live.ts";
import { type RotationValues, rotateSet } from "./rotate-session.ts";

const V: RotationValues = {
  sessionId: "v.session_id",
  presentedGeneration: "v.generation",
  presentedHash: "v.presented_hash",
  successorHash: "v.successor_hash",
  now: "v.now",
  idleExpiresAt: "v.idle_expires_at",
  signingKid: "v.signing_kid",
  successorKid: "v.successor_kid",
  macKid: "v.mac_kid",
};

/**
 * {@link rotateIfLive} for several sessions at once: each row of $1 (a JSON array of objects with the
 * members named in the record definition below; timestamps as ISO strings, hashes as `\x` hex) is
 * one caller's fast-path rotation, with its own generation and hash guard, its own clock and its own
 * allow-lists. One statement, one commit; a row returns (with its index `i`) only if its session
 * rotated. At most one row per session: the batcher never puts two of one session in a group (with
 * two, UPDATE … FROM would apply only one of them and which one is unspecified).
 */
export const rotateIfLiveMany = sql<RotatedSessionRow & { i: number }>(
  "gh_rotate_if_live_many",
  `UPDATE sessions s ${rotateSet(V)}
     FROM jsonb_to_recordset($1::jsonb) AS v(
       i int, session_id uuid, generation int, presented_hash bytea, successor_hash bytea,
       now timestamptz, idle_expires_at timestamptz, signing_kid text, successor_kid text, mac_kid text,
       client_id text, audiences text[], tenants text[], subject_prefixes text[])
    WHERE ${rotateIfLiveWhere(V, {
      clientId: "v.client_id",
      audiences: "v.audiences",
      tenants: "v.tenants",
      subjectPrefixes: "v.subject_prefixes",
    })}
   RETURNING v.i, ${ROTATED_SESSION_COLUMNS(V)}`,
);
