import { hkdfSync, randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { createLogger } from "../../services/shared/logging/index.ts";
import { rewrapKeys } from "../../services/token/keys/key-rewrap.ts";
import { LEGACY_SUCCESSOR_KID, rotateSuccessorKey } from "../../services/token/keys/refresh-keys.ts";
import {
  type RunningTokenService,
  startTokenService,
  type TokenServiceSettings,
} from "../../services/token/token-service.ts";
import { deriveSuccessor, hashRefreshToken } from "../../services/token/tokens/refresh-token-format.ts";
import { type TestDatabase, useTestDatabase } from "../support/database.ts";
import { createLegacySession } from "../support/legacy-refresh-tokens.ts";
import { grpcTokenClient } from "../support/token-clients.ts";
import { createTestClient, testClock } from "../support/token-fixtures.ts";

/**
 * The refresh successor key (issue 14 item 13) through the real service: a grace-window replay must
 * hand out the successor the first refresh handed out, whatever happened to the keys in between
 * (master key rewrapped, successor key rotated), and sessions rotated the old way keep replaying.
 */
let tdb: TestDatabase;
let service: RunningTokenService;
let masterKey = randomBytes(32);
const clock = testClock(Date.now());
let creds: { id: string; secret: string };
const log = createLogger({ level: "silent", component: "test", pretty: false });

function start(key: TokenServiceSettings["masterKey"]): Promise<RunningTokenService> {
  const config: TokenServiceSettings = {
    databasePoolSize: 4,
    redisUrl: undefined,
    grpcListen: { host: "127.0.0.1", port: 0 },
    httpListen: { host: "127.0.0.1", port: 0 },
    maxConnections: 10_000,
    h2MaxConcurrentStreams: 1000,
    issuer: "https://auth.test",
    masterKey: key,
    maxAccessTokenTtl: 30 * 60_000,
    jwksMaxAge: 5 * 60_000,
    keyRotation: false,
    keyRotationInterval: 30 * 86_400_000,
    keyPublishDelay: 3_600_000,
    credentialCacheTtl: 30_000,
    revocationStream: "gatehouse:revocations",
    publishTimeout: 500,
    auditRetention: 0,
    shutdownGrace: 1000,
    revocation: "none",
    trustedIssuers: [],
    assertionMaxLifetime: 3_600_000,
    assertionClockSkew: 60_000,
    assertionJwksCooldown: 30_000,
  };
  return startTokenService({
    settings: config,
    database: { kind: "postgres", url: tdb.url },
    logger: log,
    now: clock.now,
    publish: async () => true,
  });
}

beforeAll(async () => {
  tdb = await useTestDatabase();
  creds = { id: "web", secret: (await createTestClient(tdb.db.prisma, { id: "web" })).secret };
  service = await start(masterKey);
});
afterAll(async () => {
  await service?.shutdown();
  await tdb?.drop();
});

async function withTokens<T>(fn: (t: ReturnType<typeof grpcTokenClient>) => Promise<T>): Promise<T> {
  const t = grpcTokenClient(service.grpcPort, creds);
  try {
    return await fn(t);
  } finally {
    t.close();
  }
}

const login = (subject: string) =>
  withTokens((t) => t.issue({ subject, audience: ["orders"], scopes: ["orders:read"] }));
const refresh = (refreshToken: string) => withTokens((t) => t.refresh({ refreshToken }));

/** The successor key recorded with a token's rotation: on the session row (v2) or its legacy row. */
async function successorKidOf(token: string): Promise<string | null> {
  const { rows } = await tdb.sql.query(
    `SELECT refresh_successor_kid AS successor_kid FROM sessions WHERE refresh_previous_hash = $1
     UNION ALL SELECT successor_kid FROM refresh_tokens WHERE token_hash = $1`,
    [hashRefreshToken(token)],
  );
  return rows[0].successor_kid;
}

describe("refresh successor key", () => {
  it("replays a rotation made the old way (no successor kid, key derived from the master key)", async () => {
    const { refreshToken } = await createLegacySession(tdb.sql, {
      clientId: "web",
      subject: "old-row",
      audience: ["orders"],
      scopes: ["orders:read"],
      now: clock.now(),
    });
    const legacyKey = Buffer.from(
      hkdfSync("sha256", masterKey, Buffer.alloc(0), "gatehouse refresh-token successor v1", 32),
    );
    const successor = deriveSuccessor(refreshToken, legacyKey);
    // What a rotation by the previous version left behind.
    await tdb.sql.query(
      `WITH t AS (
         UPDATE refresh_tokens SET used_at = $3, successor_hash = $2 WHERE token_hash = $1
         RETURNING session_id, expires_at)
       INSERT INTO refresh_tokens (token_hash, session_id, parent_hash, created_at, expires_at)
       SELECT $2, t.session_id, $1, $3, t.expires_at FROM t`,
      [hashRefreshToken(refreshToken), hashRefreshToken(successor), new Date(clock.now())],
    );
    expect(await successorKidOf(refreshToken)).toBeNull();
    clock.advance(2000);
    const replay = await refresh(refreshToken);
    expect(replay.refreshToken).toBe(successor);
    await refresh(successor);
  });

  it("records the active key's kid with each rotation", async () => {
    const { refreshToken } = await login("kid");
    await refresh(refreshToken);
    expect(await successorKidOf(refreshToken)).toBe(LEGACY_SUCCESSOR_KID);
  });

  it("replays the same successor after the master key was rewrapped, and that successor works", async () => {
    const { refreshToken } = await login("rewrap");
    const first = await refresh(refreshToken);
    await service.shutdown();
    const newKey = randomBytes(32);
    await rewrapKeys(tdb.db.prisma, masterKey, newKey);
    masterKey = newKey;
    service = await start(newKey);
    clock.advance(2000);
    const replay = await refresh(refreshToken);
    expect(replay.refreshToken).toBe(first.refreshToken);
    const next = await refresh(replay.refreshToken);
    expect(next.refreshToken).not.toBe(first.refreshToken);
  });

  it("replays the same successor after the successor key was rotated; later rotations use the new kid", async () => {
    const { refreshToken } = await login("rotate");
    const first = await refresh(refreshToken);
    const rotated = await rotateSuccessorKey(tdb.db.prisma, masterKey, { actor: "system:cli" }, clock.now);
    expect(rotated.replaced).toBe(LEGACY_SUCCESSOR_KID);
    expect(rotated.kid).not.toBe(LEGACY_SUCCESSOR_KID);
    clock.advance(2000);
    const replay = await refresh(refreshToken);
    expect(replay.refreshToken).toBe(first.refreshToken);

    // The running service picks the new key up on its poll; from then on rotations record it.
    let current = replay.refreshToken;
    await vi.waitFor(
      async () => {
        const r = await refresh(current);
        const kid = await successorKidOf(current);
        current = r.refreshToken;
        expect(kid).toBe(rotated.kid);
      },
      { timeout: 8000, interval: 500 },
    );
    // A replay of a rotation made with the new key, after yet another rotation, still matches.
    const { refreshToken: fresh } = await login("rotate-2");
    const made = await refresh(fresh);
    expect(await successorKidOf(fresh)).toBe(rotated.kid);
    await rotateSuccessorKey(tdb.db.prisma, masterKey, { actor: "system:cli" }, clock.now);
    expect((await refresh(fresh)).refreshToken).toBe(made.refreshToken);
    await refresh(made.refreshToken);

    const audit = await tdb.sql.query(
      "SELECT actor, target_id, details FROM audit_events WHERE action = 'refresh_key.rotate' ORDER BY id",
    );
    expect(audit.rows[0]).toMatchObject({
      actor: "system:cli",
      target_id: rotated.kid,
      details: { purpose: "successor", replaced: LEGACY_SUCCESSOR_KID },
    });
  });
});
