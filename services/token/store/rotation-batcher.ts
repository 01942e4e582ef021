import { type RotatedSessionRow, rotateIfLive } from "../sql/rotate-if-live.ts";
import { rotateIfLiveMany } from "../sql/rotate-if-live-many.ts";
import { rotationParams } from "../sql/rotate-session.ts";
import { createGroupCommit, type GroupCommitOptions } from "./group-commit.ts";
import type { SqlExecutor } from "./sql-executor.ts";
import type { FastRotation } from "./token-store.ts";

/**
 * Refresh's fast-path rotation with group commit (group-commit.ts): rotations that queue behind
 * `maxInFlight` statements go together as one `UPDATE sessions … FROM jsonb_to_recordset(…)`; an
 * idle service sends each at once, alone, through the one-row statement. Each row keeps its own
 * generation and hash guard and each caller gets its own answer: its session's row, or null (not
 * rotated: the flow takes the slow path, as after the one-row statement).
 *
 * Two rotations of one session never share a group: the later waits for a later group, so it runs
 * after the earlier committed and finds the generation moved, exactly as it would have alone (a
 * grace-window duplicate then replays the same successor; a reused token is judged on fresh state).
 *
 * Why: one commit and one round trip per rotation make Postgres, not the service, the cost of
 * Refresh (shared/notes/refresh-storage.md; bench/soak.ts measures the SQL-level gain).
 */
export function createRotationBatcher(
  db: SqlExecutor,
  options: GroupCommitOptions = {},
): (r: FastRotation) => Promise<RotatedSessionRow | null> {
  const rotate = createGroupCommit<Queued, RotatedSessionRow | null>(
    {
      key: (q) => q.r.sessionId,
      async one({ r }) {
        const rows = await db.query(rotateIfLive, oneRowParams(r));
        return rows[0] ?? null;
      },
      async many(group) {
        const rows = await db.query(rotateIfLiveMany, [
          group.map((q) => q.r.sessionId),
          JSON.stringify(group.map((q, i) => ({ ...q.row, i }))),
        ]);
        const rotated: (RotatedSessionRow | null)[] = group.map(() => null);
        for (const { i, ...row } of rows) rotated[i] = row;
        return rotated;
      },
    },
    options,
  );
  // The group row is built before queueing: a rotation that cannot be written fails its caller alone.
  return async (r) => rotate({ r, row: groupRow(r) });
}

interface Queued {
  r: FastRotation;
  row: ReturnType<typeof groupRow>;
}

/** $1-$13 of rotate-if-live.ts: rotate-session.ts's $1-$9, then the caller's allow-lists. */
function oneRowParams(r: FastRotation): unknown[] {
  return [
    ...rotationParams(r),
    r.callerClientId,
    r.allowed.audiences,
    r.allowed.tenants,
    r.allowed.subjectPrefixes,
  ];
}

/** A row of {@link rotateIfLiveMany}'s JSON (without its index): the names of its record definition. */
function groupRow(r: FastRotation) {
  return {
    session_id: r.sessionId,
    generation: r.presentedGeneration,
    presented_hash: `\\x${r.presentedHash.toString("hex")}`,
    successor_hash: `\\x${r.successorHash.toString("hex")}`,
    now: r.now.toISOString(),
    idle_expires_at: r.idleExpiresAt.toISOString(),
    signing_kid: r.signingKid,
    successor_kid: r.successorKid,
    mac_kid: r.macKid,
    client_id: r.callerClientId,
    audiences: r.allowed.audiences,
    tenants: r.allowed.tenants,
    subject_prefixes: r.allowed.subjectPrefixes,
  };
}
