import { create } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  IssueRequestSchema,
  RefreshRequestSchema,
} from "../../services/gen/proto/gatehouse/v1/token_service_pb.ts";
import type { ClientRecord } from "../../services/token/clients/client-record.ts";
import type { FlowDeps } from "../../services/token/flows/flow-deps.ts";
import { issue } from "../../services/token/flows/issue-flow.ts";
import { refresh } from "../../services/token/flows/refresh-flow.ts";
import { poolExecutor } from "../../services/token/store/sql-executor.ts";
import { hashRefreshToken } from "../../services/token/tokens/refresh-token-format.ts";
import { type TestDatabase, useTestDatabase } from "../support/database.ts";
import { createTestClient, flowDeps, testClock } from "../support/token-fixtures.ts";

/**
 * The refresh grace window is measured from when a duplicate arrived, not from when it got its turn
 * at the database: under load (found by the reliability suite's refresh storm), duplicates that
 * arrived together with the rotation waited in the pool queue past a short window and were judged
 * reuse, revoking their users' sessions.
 */

const GRACE_SECONDS = 3;
let tdb: TestDatabase;
let deps: Awaited<ReturnType<typeof flowDeps>>;
const clock = testClock();
let web: ClientRecord;
let seq = 0;
const as = (client: ClientRecord) => ({ client, requestId: `req-${++seq}` });

beforeAll(async () => {
  tdb = await useTestDatabase(undefined, { poolSize: 4 });
  deps = await flowDeps(tdb.db.prisma, poolExecutor(tdb.db.pool!), clock.now);
  web = (await createTestClient(tdb.db.prisma, { id: "web", refreshGraceSeconds: GRACE_SECONDS })).client;
});
afterAll(async () => {
  deps?.stop();
  await tdb?.drop();
});

/** Flow deps whose state reads take `ms` of (test-clock) time, like a busy pool's queue. */
function slowReads(ms: number): FlowDeps {
  return {
    ...deps,
    store: {
      ...deps.store,
      async readRefreshState(hash) {
        clock.advance(ms);
        return deps.store.readRefreshState(hash);
      },
    },
  };
}

const login = (subject: string) =>
  issue(
    deps,
    as(web),
    create(IssueRequestSchema, { subject, audience: ["orders"], scopes: ["orders:read"] }),
  );
const refreshWith = (d: FlowDeps, token: string) =>
  refresh(d, as(web), create(RefreshRequestSchema, { refreshToken: token }));

describe("refresh grace window under load", () => {
  it("a duplicate that arrived with the rotation gets the same successor however long it queued", async () => {
    const refreshToken = (await login("queued-duplicate")).refreshToken!;
    const first = await refreshWith(deps, refreshToken);
    // Arrives at the same instant, then waits longer than the grace window for its read.
    const duplicate = await refreshWith(slowReads((GRACE_SECONDS + 2) * 1000), refreshToken);
    expect(duplicate.refreshToken).toBe(first.refreshToken);
    // One rotation, not revoked, and its live token is the one successor both got.
    const live = await tdb.sql.query(
      "SELECT count(*)::int AS n FROM sessions s WHERE s.subject = $1 AND s.refresh_generation = 2 AND s.refresh_hash = $2 AND s.revoked_at IS NULL",
      ["queued-duplicate", hashRefreshToken(first.refreshToken!)],
    );
    expect(live.rows[0].n).toBe(1);
  });

  it("a duplicate that arrives after the window is still reuse, and revokes the session", async () => {
    const refreshToken = (await login("late-duplicate")).refreshToken!;
    const first = await refreshWith(deps, refreshToken);
    clock.advance((GRACE_SECONDS + 1) * 1000);
    await expect(refreshWith(deps, refreshToken)).rejects.toMatchObject({ code: "refresh_token_reused" });
    await expect(refreshWith(deps, first.refreshToken!)).rejects.toMatchObject({ code: "session_revoked" });
  });
});
