import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "../../services/shared/logging/index.ts";
import { type RunningTokenService, startTokenService } from "../../services/token/token-service.ts";
import { type TestDatabase, useTestDatabase } from "../support/database.ts";
import { type GrpcFailure, grpcTokenClient } from "../support/token-clients.ts";
import { createTestClient, testClock } from "../support/token-fixtures.ts";
import { testServiceSettings } from "../support/token-service-settings.ts";

/**
 * Issue 14 item 11: Revoke is rate limited per calling client, and a revocation that changes nothing
 * observable writes no outbox event and no audit row, while every one that does change something
 * still writes both.
 */

const MAX_ACCESS_TTL_MS = 3_600_000;
const REVOKE_LIMIT = { ratePerSecond: 1, burst: 3 };
const clock = testClock(Date.now());
const masterKey = randomBytes(32);
let tdb: TestDatabase;
let service: RunningTokenService;
const creds: Record<string, { id: string; secret: string }> = {};

beforeAll(async () => {
  tdb = await useTestDatabase();
  for (const [id, roles] of [
    ["app", ["issuer", "introspector"]],
    ["ops", ["revoker"]],
    ["hasty", ["issuer"]],
  ] as const) {
    creds[id] = { id, secret: (await createTestClient(tdb.db.prisma, { id, roles: [...roles] })).secret };
  }
  service = await startTokenService({
    settings: testServiceSettings({
      masterKey,
      maxAccessTokenTtl: MAX_ACCESS_TTL_MS,
      rateLimitRevoke: "off",
    }),
    database: { kind: "postgres", url: tdb.url },
    logger: createLogger({ level: "silent", component: "token", pretty: false }),
    now: clock.now,
  });
});
afterAll(async () => {
  await service?.shutdown();
  await tdb?.drop();
});

/** Outbox events and audit rows written so far: what a revocation costs. */
const written = async () => ({
  events: await tdb.db.prisma.revocationOutbox.count(),
  audit: await tdb.db.prisma.auditEvent.count(),
});

describe("Revoke rate limit", () => {
  it("refuses a client over GATEHOUSE_RATE_LIMIT_REVOKE with rate_limited and a retry delay, not others", async () => {
    const limited = await startTokenService({
      settings: testServiceSettings({ masterKey, rateLimitRevoke: REVOKE_LIMIT }),
      database: { kind: "postgres", url: tdb.url },
      logger: createLogger({ level: "silent", component: "token", pretty: false }),
    });
    const hasty = grpcTokenClient(limited.grpcPort, creds.hasty);
    const app = grpcTokenClient(limited.grpcPort, creds.app);
    try {
      const answers: (string | GrpcFailure)[] = [];
      for (let i = 0; i < REVOKE_LIMIT.burst + 2; i++) {
        answers.push(
          await hasty
            .revoke({ target: { case: "subject", value: "nobody" }, accessOnly: true })
            .then(() => "ok")
            .catch((e: GrpcFailure) => e),
        );
      }
      expect(answers.slice(0, REVOKE_LIMIT.burst)).toEqual(Array(REVOKE_LIMIT.burst).fill("ok"));
      const refused = answers[REVOKE_LIMIT.burst] as GrpcFailure;
      expect(refused).toMatchObject({ code: 8, reason: "rate_limited" });
      expect(refused.metadata).toMatchObject({ limit: "rate", method: "Revoke" });
      expect(refused.message).toMatch(/retry after \d+ ms/);
      // Another client's budget is its own.
      await expect(app.revoke({ target: { case: "subject", value: "nobody" } })).resolves.toMatchObject({
        sessionsRevoked: 0,
      });
    } finally {
      hasty.close();
      app.close();
      await limited.shutdown();
    }
  });
});

describe("no-op revocations write nothing; real ones always write", () => {
  it("skips an access-only bump of a session with no token minted since the last bump, never one with", async () => {
    const app = grpcTokenClient(service.grpcPort, creds.app);
    try {
      const first = await app.issue({ subject: "ann", audience: ["orders"] });
      const bump = () => app.revoke({ target: { case: "subject", value: "ann" }, accessOnly: true });

      // Past the longest grace period, so no replay of a refresh token can mint at the new version.
      clock.advance(61_000);
      expect((await bump()).eventIds).toHaveLength(1);
      expect((await app.introspect({ token: first.accessToken })).active).toBe(false);
      // Nothing minted since: the same request again changes nothing and writes nothing.
      clock.advance(1000);
      const before = await written();
      expect((await bump()).eventIds).toEqual([]);
      expect((await bump()).eventIds).toEqual([]);
      expect(await written()).toEqual(before);

      // A refresh mints a token at the new version: the next bump must write and kill it.
      const second = await app.refresh({ refreshToken: first.refreshToken });
      clock.advance(1000);
      expect((await bump()).eventIds).toHaveLength(1);
      expect((await app.introspect({ token: second.accessToken })).active).toBe(false);

      // A grace replay of that refresh mints again without moving last_used_at: not skipped either.
      clock.advance(1000);
      const replay = await app.refresh({ refreshToken: first.refreshToken });
      expect((await app.introspect({ token: replay.accessToken })).active).toBe(true);
      clock.advance(1000);
      expect((await bump()).eventIds).toHaveLength(1);
      expect((await app.introspect({ token: replay.accessToken })).active).toBe(false);
    } finally {
      app.close();
    }
  });

  it("skips an access-only bump when every token the session minted has expired", async () => {
    const app = grpcTokenClient(service.grpcPort, creds.app);
    try {
      await app.issue({ subject: "bob", audience: ["orders"] });
      clock.advance(MAX_ACCESS_TTL_MS + 61_000);
      const before = await written();
      const r = await app.revoke({ target: { case: "subject", value: "bob" }, accessOnly: true });
      expect(r).toMatchObject({ sessionsRevoked: 0, eventIds: [] });
      expect(await written()).toEqual(before);
      // The session itself is still revocable: a full revoke writes its event.
      expect((await app.revoke({ target: { case: "subject", value: "bob" } })).sessionsRevoked).toBe(1);
    } finally {
      app.close();
    }
  });

  it("skips a subject cut-off the stored one already covers, never a later one", async () => {
    const ops = grpcTokenClient(service.grpcPort, creds.ops);
    try {
      const cut = () => ops.revoke({ target: { case: "subject", value: "cat" } });
      expect((await cut()).eventIds).toHaveLength(1);
      const before = await written();
      expect((await cut()).eventIds).toEqual([]);
      expect(await written()).toEqual(before);
      clock.advance(1);
      expect((await cut()).eventIds).toHaveLength(1);
      expect(await written()).toEqual({ events: before.events + 1, audit: before.audit + 1 });
    } finally {
      ops.close();
    }
  });
});
