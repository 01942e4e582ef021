import { ROTATED_SESSION_COLUMNS, type RotatedSessionRow, rotateIfLiveWhere } from "./rotate-if-live.ts";
import { type RotationValues, rotateSet } from "./rotate-session.ts";
import { sql } from "./statement.ts";

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
 * {@link rotateIfLive} for several sessions at once: each row of $2 (a JSON array of objects with the
 * members named in the record definition below; timestamps as ISO strings, hashes as `\x` hex) is
 * one caller's fast-path rotation, with its own generation and hash guard, its own clock and its own
 * allow-lists. One statement, one commit; a row returns (with its index `i`) only if its session
 * rotated. At most one row per session: the batcher never puts two of one session in a group (with
 * two, UPDATE … FROM would apply only one of them and which one is unspecified).
 *
 * $1 holds the same session ids as an array: `s.id = ANY ($1)` makes the plan a scan of the sessions'
 * primary key (a bitmap scan visits rows in page order, so two groups lock shared rows in the same
 * order; a deadlock that still happens fails the group with 40P01, which the flow retries). Joined on
 * the JSON rows alone, Postgres guesses 100 of them and hashes them against a sequential scan of
 * `sessions` as soon as it is small enough, which costs far more than the group saves.
 */
export const rotateIfLiveMany = sql<RotatedSessionRow & { i: number }>(
  "gh_rotate_if_live_many",
  (t) => `UPDATE ${t.sessions} s ${rotateSet(V)}
     FROM jsonb_to_recordset($2::jsonb) AS v(
       i int, session_id uuid, generation int, presented_hash bytea, successor_hash bytea,
       now timestamptz, idle_expires_at timestamptz, signing_kid text, successor_kid text, mac_kid text,
       client_id text, audiences text[], tenants text[], subject_prefixes text[])
    WHERE s.id = ANY ($1::uuid[]) AND ${rotateIfLiveWhere(t, V, {
      clientId: "v.client_id",
      audiences: "v.audiences",
      tenants: "v.tenants",
      subjectPrefixes: "v.subject_prefixes",
    })}
   RETURNING v.i, ${ROTATED_SESSION_COLUMNS(V)}`,
);
