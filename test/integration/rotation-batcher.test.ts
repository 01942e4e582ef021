import { randomBytes, randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createRotationBatcher } from "../../services/token/store/rotation-batcher.ts";
import { poolExecutor, type SqlExecutor } from "../../services/token/store/sql-executor.ts";
import { createSqlTokenStore } from "../../services/token/store/sql-token-store.ts";
import type { FastRotation } from "../../services/token/store/token-store.ts";
import { type TestDatabase, useTestDatabase } from "../support/database.ts";
import { createTestClient } from "../support/token-fixtures.ts";

/**
 * Refresh's grouped fast-path rotation on real Postgres: each row of a group keeps its own guard and
 * its caller gets its own answer; a grouped rotation writes exactly what the one-row statement
 * writes; two rotations of one session never share a group, so the second never wins; a row Postgres
 * refuses fails only its caller.
 */

let tdb: TestDatabase;
const T0 = Date.parse("2026-01-05T12:00:00.000Z");

/** The real executor, recording the statements it runs by name and their params. */
function recordingExecutor(inner: SqlExecutor) {
  const calls: { name: string; params: readonly unknown[] }[] = [];
  const executor: SqlExecutor = {
    query(statement, params) {
      calls.push({ name: statement.name, params });
      return inner.query(statement, params);
    },
  };
  const named = (name: string) => calls.filter((c) => c.name === name);
  /** The session ids of each grouped statement's rows. */
  const groups = () =>
    named("gh_rotate_if_live_many").map((c) =>
      (JSON.parse(c.params[1] as string) as { session_id: string }[]).map((r) => r.session_id),
    );
  return { executor, named, groups };
}

interface Live {
  sessionId: string;
  hash: Buffer;
}

let n = 0;
/** A live v2 session of generation 1, created through the store as Issue creates it. */
async function liveSession(clientId = "web"): Promise<Live> {
  n++;
  const store = createSqlTokenStore(poolExecutor(tdb.db.pool!));
  const s = { sessionId: randomUUID(), hash: randomBytes(32) };
  await store.createSession({
    sessionId: s.sessionId,
    subject: `user-${n}`,
    clientId,
    tenant: null,
    scopes: ["orders:read"],
    audience: ["orders"],
    claims: null,
    signingKid: "kid-0",
    now: new Date(T0),
    idleExpiresAt: new Date(T0 + 14 * 86_400_000),
    expiresAt: new Date(T0 + 90 * 86_400_000),
    device: { userAgent: null, ipAddress: null, name: null },
    refreshTokenHash: s.hash,
    refreshMacKid: "rk-mac-test",
  });
  return s;
}

function rotation(s: Live, overrides: Partial<FastRotation> = {}): FastRotation {
  const now = new Date(T0 + 60_000);
  return {
    sessionId: s.sessionId,
    presentedGeneration: 1,
    presentedHash: s.hash,
    successorHash: randomBytes(32),
    now,
    idleExpiresAt: new Date(now.getTime() + 14 * 86_400_000),
    signingKid: "kid-1",
    successorKid: "rk-successor-test",
    macKid: "rk-mac-test",
    callerClientId: "web",
    allowed: { audiences: ["orders"], tenants: null, subjectPrefixes: [] },
    ...overrides,
  };
}

/** A session's refresh state and everything a rotation sets. */
async function stored(id: string) {
  const { rows } = await tdb.sql.query(
    `SELECT refresh_generation, refresh_hash, refresh_previous_hash, refresh_rotated_at,
            refresh_successor_kid, refresh_mac_kid, last_used_at, idle_expires_at, signing_kid, version
       FROM sessions WHERE id = $1`,
    [id],
  );
  return rows[0];
}

beforeAll(async () => {
  tdb = await useTestDatabase();
  await createTestClient(tdb.db.prisma, { id: "web" });
  await createTestClient(tdb.db.prisma, { id: "other" });
});

afterAll(async () => {
  await tdb?.drop();
});

describe("rotation batcher", () => {
  it("rotates a group of distinct sessions in one statement, each caller getting its own row, stored as alone", async () => {
    const { executor, named } = recordingExecutor(poolExecutor(tdb.db.pool!));
    const rotate = createRotationBatcher(executor, { maxBatch: 64, maxInFlight: 1 });
    const sessions = await Promise.all(Array.from({ length: 30 }, () => liveSession()));
    const twins = await Promise.all(sessions.map(() => liveSession()));
    const rotations = sessions.map((s) => rotation(s));

    // Each twin alone (nothing queued: the one-row statement)...
    for (const [i, t] of twins.entries()) {
      await rotate(rotation(t, { successorHash: rotations[i]!.successorHash }));
    }
    expect(named("gh_rotate_if_live_many")).toHaveLength(0);
    // ...and the sessions all at once: the first alone, the other 29 queued behind it as one group.
    const results = await Promise.all(rotations.map((r) => rotate(r)));
    expect(named("gh_rotate_if_live_many")).toHaveLength(1);

    for (const [i, s] of sessions.entries()) {
      expect(results[i]).toMatchObject({ session_id: s.sessionId, subject: expect.any(String), version: 1 });
      expect(results[i]!.refresh_expires_at).toEqual(rotations[i]!.idleExpiresAt);
      const grouped = await stored(s.sessionId);
      expect(grouped).toMatchObject({
        refresh_generation: 2,
        refresh_hash: rotations[i]!.successorHash,
        refresh_previous_hash: s.hash,
      });
      const single = await stored(twins[i]!.sessionId);
      expect(single.refresh_previous_hash).toEqual(twins[i]!.hash);
      expect({ ...grouped, refresh_previous_hash: null }).toEqual({ ...single, refresh_previous_hash: null });
    }
  });

  it("answers null, changing nothing, for exactly the rows of a group whose own guard fails", async () => {
    const { executor, named } = recordingExecutor(poolExecutor(tdb.db.pool!));
    const rotate = createRotationBatcher(executor, { maxBatch: 64, maxInFlight: 1 });
    const [first, live, stale, wrongHash, otherClient, revoked, expired, narrowed] = await Promise.all(
      Array.from({ length: 8 }, () => liveSession()),
    );
    await tdb.sql.query("UPDATE sessions SET revoked_at = $2 WHERE id = $1", [
      revoked!.sessionId,
      new Date(T0),
    ]);
    const results = await Promise.all([
      rotate(rotation(first!)),
      rotate(rotation(live!)),
      rotate(rotation(stale!, { presentedGeneration: 2 })),
      rotate(rotation(wrongHash!, { presentedHash: randomBytes(32) })),
      rotate(rotation(otherClient!, { callerClientId: "other" })),
      rotate(rotation(revoked!)),
      rotate(rotation(expired!, { now: new Date(T0 + 15 * 86_400_000) })),
      rotate(
        rotation(narrowed!, { allowed: { audiences: ["billing"], tenants: null, subjectPrefixes: [] } }),
      ),
    ]);
    expect(named("gh_rotate_if_live_many")).toHaveLength(1);
    expect(results.map((r) => r?.session_id ?? null)).toEqual([
      first!.sessionId,
      live!.sessionId,
      null,
      null,
      null,
      null,
      null,
      null,
    ]);
    for (const s of [stale, wrongHash, otherClient, revoked, expired, narrowed]) {
      expect(await stored(s!.sessionId)).toMatchObject({ refresh_generation: 1, refresh_hash: s!.hash });
    }
  });

  it("never puts two rotations of one session in a group: the later runs after, and neither a duplicate nor a rival wins", async () => {
    const { executor, groups } = recordingExecutor(poolExecutor(tdb.db.pool!));
    const rotate = createRotationBatcher(executor, { maxBatch: 64, maxInFlight: 1 });
    const [opener, contested, ...others] = await Promise.all(Array.from({ length: 6 }, () => liveSession()));
    const winner = rotation(contested!);
    const rival = rotation(contested!, { successorHash: randomBytes(32) });
    const results = await Promise.all([
      rotate(rotation(opener!)),
      rotate(winner),
      rotate({ ...winner }), // a concurrent duplicate of the same request
      ...others.map((s) => rotate(rotation(s))),
      rotate(rival), // the same token presented with another successor
    ]);
    for (const g of groups()) expect(new Set(g).size).toBe(g.length);
    // The winner went in the group; the duplicate and the rival each after it, alone.
    expect(
      groups()
        .flat()
        .filter((id) => id === contested!.sessionId),
    ).toHaveLength(1);
    expect(results[1]).toMatchObject({ session_id: contested!.sessionId });
    expect(results[2]).toBeNull();
    expect(results.at(-1)).toBeNull();
    expect(results.slice(3, -1).map((r) => r?.session_id)).toEqual(others.map((s) => s.sessionId));
    expect(await stored(contested!.sessionId)).toMatchObject({
      refresh_generation: 2,
      refresh_hash: winner.successorHash,
      refresh_previous_hash: contested!.hash,
    });
  });

  it("fails only the row Postgres refuses, with the error it gets alone, and rotates the rest", async () => {
    const { executor, named } = recordingExecutor(poolExecutor(tdb.db.pool!));
    const rotate = createRotationBatcher(executor, { maxBatch: 64, maxInFlight: 1 });
    const [first, doomed, alone, ...rest] = await Promise.all(Array.from({ length: 8 }, () => liveSession()));
    // The last generation there is: rotating it overflows Postgres' integer (class 22).
    const last = 2_147_483_647;
    await tdb.sql.query("UPDATE sessions SET refresh_generation = $2 WHERE id = ANY($1::uuid[])", [
      [doomed!.sessionId, alone!.sessionId],
      last,
    ]);
    const aloneError = await rotate(rotation(alone!, { presentedGeneration: last })).catch((e: unknown) => e);
    expect(aloneError).toMatchObject({ code: "22003" });

    const outcomes = await Promise.allSettled([
      rotate(rotation(first!)),
      rotate(rotation(doomed!, { presentedGeneration: last })),
      ...rest.map((s) => rotate(rotation(s))),
    ]);
    expect(named("gh_rotate_if_live_many")).toHaveLength(1);
    expect(outcomes[1]).toMatchObject({ status: "rejected", reason: { code: "22003" } });
    const others = [outcomes[0], ...outcomes.slice(2)];
    expect(others.map((o) => (o.status === "fulfilled" ? o.value?.session_id : o.reason))).toEqual(
      [first, ...rest].map((s) => s!.sessionId),
    );
    expect(await stored(doomed!.sessionId)).toMatchObject({
      refresh_generation: last,
      refresh_hash: doomed!.hash,
    });
  });

  it("fails a rotation that cannot be written alone, before it joins a group", async () => {
    const { executor } = recordingExecutor(poolExecutor(tdb.db.pool!));
    const rotate = createRotationBatcher(executor, { maxBatch: 64, maxInFlight: 1 });
    const sessions = await Promise.all(Array.from({ length: 4 }, () => liveSession()));
    const outcomes = await Promise.allSettled(
      sessions.map((s, i) => rotate(rotation(s, i === 2 ? { now: new Date(Number.NaN) } : {}))),
    );
    expect(outcomes.map((o) => o.status)).toEqual(["fulfilled", "fulfilled", "rejected", "fulfilled"]);
    expect(await stored(sessions[2]!.sessionId)).toMatchObject({ refresh_generation: 1 });
  });
});
