import { randomBytes } from "node:crypto";
import { decodeJwt, decodeProtectedHeader } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SigningKeyStatus } from "../../services/gen/proto/gatehouse/v1/admin_service_pb.ts";
import { createRedisBus } from "../../services/shared/revocation/redis-bus.ts";
import type { RevocationBus } from "../../services/shared/revocation/revocation-bus.ts";
import { loadSettings } from "../../services/shared/settings/index.ts";
import {
  createMemoryRevocationState,
  type MemoryRevocationState,
} from "../../services/sidecar/revocation-state/memory-revocation-state.ts";
import {
  createStreamFollower,
  type StreamFollower,
} from "../../services/sidecar/revocation-stream/stream-follower.ts";
import { type RunningSidecar, startSidecar } from "../../services/sidecar/sidecar.ts";
import { type RunningTokenService, startTokenService } from "../../services/token/token-service.ts";
import { tokenServiceSettings } from "../../services/token/token-service-settings.ts";
import { grpcAdminClient } from "../support/admin-clients.ts";
import { type TestDatabase, useTestDatabase } from "../support/database.ts";
import { type TestRedis, useTestRedis } from "../support/redis.ts";
import { ISSUER, silentLogger, testSidecarSettings } from "../support/sidecar-fixtures.ts";
import { grpcTokenClient } from "../support/token-clients.ts";
import { createTestClient, testClock } from "../support/token-fixtures.ts";

/**
 * Signing keys end to end: a token service publishing revocations to Redis, and a sidecar that
 * follows the stream and fetches the JWKS, as `gatehouse serve` and `gatehouse sidecar` wire them.
 * Both run on one fake clock; the sidecar's JWKS refresh timer runs on real time, so the test asks
 * for the refresh (`jwks.refreshNow()`) where the timer would have run.
 */
const DAY = 86_400_000;
const MAX_TTL_MS = 30 * 60_000;
/** Retiring → retirable: the longest token lifetime plus the key ring's reload slack. */
const RETIRE_AFTER_MS = MAX_TTL_MS + 5_000;

const clock = testClock(Date.now());
let tdb: TestDatabase;
let tredis: TestRedis;
let service: RunningTokenService;
let sidecar: RunningSidecar;
let state: MemoryRevocationState;
let follower: StreamFollower;
let sidecarBus: RevocationBus;
const creds: Record<string, { id: string; secret: string }> = {};
/** When (performance.now) the sidecar applied each key_revoked event, by kid. */
const keyRevokedAt = new Map<string, number>();

beforeAll(async () => {
  tdb = await useTestDatabase();
  tredis = await useTestRedis("key-rev");
  const stream = `${tredis.prefix}revocations`;
  for (const [id, roles] of [
    ["root", ["admin"]],
    ["web", ["issuer"]],
  ] as const) {
    creds[id] = { id, secret: (await createTestClient(tdb.db.prisma, { id, roles: [...roles] })).secret };
  }
  service = await startTokenService({
    settings: loadSettings(tokenServiceSettings, {
      env: {
        DATABASE_URL: tdb.url,
        REDIS_URL: tredis.url,
        GATEHOUSE_REVOCATION_STREAM: stream,
        GATEHOUSE_ISSUER: ISSUER,
        GATEHOUSE_MASTER_KEY: randomBytes(32).toString("base64"),
        GATEHOUSE_LISTEN: "127.0.0.1:0",
        GATEHOUSE_HTTP_LISTEN: "127.0.0.1:0",
        GATEHOUSE_ADMIN_LISTEN: "127.0.0.1:0",
        GATEHOUSE_MAX_ACCESS_TOKEN_TTL: "30m",
        GATEHOUSE_KEY_ROTATION: "off", // steps are run through RotateSigningKeys, on the fake clock
        GATEHOUSE_SHUTDOWN_GRACE: "1s",
      },
    }),
    database: { kind: "postgres", url: tdb.url },
    logger: silentLogger(),
    now: clock.now,
  });
  // The follower as `gatehouse sidecar` builds it when REDIS_URL is set (sidecar-command.ts).
  const logger = silentLogger();
  sidecarBus = createRedisBus({ url: tredis.url, name: "gatehouse-sidecar", logger });
  state = createMemoryRevocationState({ stalenessBoundMs: 30_000 });
  follower = createStreamFollower({
    bus: sidecarBus,
    stream,
    state,
    logger,
    now: clock.now,
    blockMs: 200,
    onApplied: (event) => {
      if (event.type === "key_revoked") keyRevokedAt.set(event.kid, performance.now());
    },
  });
  sidecar = await startSidecar({
    settings: testSidecarSettings({
      GATEHOUSE_TOKEN_SERVICE_URL: `http://127.0.0.1:${service.httpPort}`,
      GATEHOUSE_UPSTREAM: "http://127.0.0.1:9",
      GATEHOUSE_REVOCATION_STREAM: stream,
    }),
    logger,
    revocation: state,
    onReady: follower.start(),
    readiness: () => (follower.ready() ? [] : ["revocation stream not bootstrapped yet"]),
    now: clock.now,
  });
  await sidecar.ready();
});
afterAll(async () => {
  await sidecar?.shutdown(100);
  await follower?.stop();
  await sidecarBus?.close();
  await service?.shutdown();
  await tredis?.cleanup();
  await tdb?.drop();
});

const admin = () => grpcAdminClient(service.grpcPort, creds.root);

async function login(subject: string) {
  const c = grpcTokenClient(service.grpcPort, creds.web);
  try {
    const r = await c.issue({ subject, audience: ["orders"] });
    return {
      token: r.accessToken,
      refreshToken: r.refreshToken,
      kid: decodeProtectedHeader(r.accessToken).kid!,
    };
  } finally {
    c.close();
  }
}

/** The sidecar's forward-auth answer: "ok", or the reason it gives in WWW-Authenticate. */
async function atSidecar(token: string): Promise<string> {
  // After the clock jumps, wait for the follower's next read to confirm the state at the new time.
  await expect.poll(() => !state.isStale(clock.now()), { timeout: 5000 }).toBeTruthy();
  const res = await fetch(`http://127.0.0.1:${sidecar.controlPort}/authz`, {
    headers: { authorization: `Bearer ${token}`, "x-forwarded-uri": "/orders/1" },
  });
  if (res.status === 200) return "ok";
  return (
    /error_description="([^"]+)"/.exec(res.headers.get("www-authenticate") ?? "")?.[1] ?? `${res.status}`
  );
}

/** What the revocation state looks at, read from a token without verifying it. */
function identityOf(token: string) {
  const claims = decodeJwt(token);
  return {
    jti: claims.jti!,
    subject: claims.sub!,
    clientId: String(claims.client_id),
    kid: decodeProtectedHeader(token).kid!,
    issuedAt: claims.iat!,
    sessionId: claims.sid as string | undefined,
  };
}

const sidecarKids = () => sidecar.jwks.keys().map((k) => k.kid);

async function activeKey() {
  const c = admin();
  try {
    return (await c.listSigningKeys({})).keys.find((k) => k.status === SigningKeyStatus.ACTIVE)!;
  } finally {
    c.close();
  }
}

describe("revoking the active signing key", () => {
  it("is refused at the sidecar at once, a new key signs, and the RPC counts the live sessions", async () => {
    const compromised = (await activeKey()).kid;
    const ann = await login("ann");
    const bob = await login("bob");
    expect([ann.kid, bob.kid]).toEqual([compromised, compromised]);
    expect(await atSidecar(ann.token)).toBe("ok");
    expect(await atSidecar(bob.token)).toBe("ok");

    const c = admin();
    const t0 = performance.now();
    const r = await c.revokeSigningKey({ kid: compromised, reason: "private key leaked" });
    const returned = performance.now();
    c.close();
    expect(r.key).toMatchObject({ kid: compromised, status: SigningKeyStatus.REVOKED });
    expect(r.liveSessionsSigned).toBe(2);
    expect(r.propagated).toBe(true);
    // Nothing was staged: a key was made and activated in the same transaction.
    expect(r.activatedKey).toMatchObject({ status: SigningKeyStatus.ACTIVE });
    const successor = r.activatedKey!.kid;
    expect(successor).not.toBe(compromised);
    expect(r.activatedKey!.createdAt).toEqual(r.key!.revokedAt);

    // Both tokens were verified (and cached) by the sidecar before; the cache never skips revocation.
    // `propagated` means the event was on the stream when the RPC returned: the follower has it
    // within its next read.
    await expect
      .poll(() => state.check(identityOf(bob.token)) === "key_revoked", { timeout: 1000 })
      .toBeTruthy();
    const appliedMs = keyRevokedAt.get(compromised)! - returned;
    expect(await atSidecar(bob.token)).toBe("key_revoked");
    expect(await atSidecar(ann.token)).toBe("key_revoked");
    console.info(
      `RevokeSigningKey took ${(returned - t0).toFixed(1)} ms; the sidecar applied key_revoked ${appliedMs.toFixed(1)} ms after its answer arrived (negative: before)`,
    );

    // The session survives: its next Refresh is signed by the successor, which the sidecar takes.
    clock.advance(60_000); // past the sidecar's unknown-kid refetch cooldown (30 s)
    const t = grpcTokenClient(service.grpcPort, creds.web);
    const refreshed = await t.refresh({ refreshToken: ann.refreshToken });
    t.close();
    expect(decodeProtectedHeader(refreshed.accessToken).kid).toBe(successor);
    expect(await atSidecar(refreshed.accessToken)).toBe("ok");
    const cyd = await login("cyd");
    expect(cyd.kid).toBe(successor);
    expect(await atSidecar(cyd.token)).toBe("ok");
    // The sidecar's refetched JWKS has the successor and not the revoked key.
    expect(sidecarKids()).toContain(successor);
    expect(sidecarKids()).not.toContain(compromised);
    expect(await atSidecar(bob.token)).toBe("key_revoked");

    const audit = await tdb.sql.query(
      "SELECT actor, outcome, details FROM audit_events WHERE action = 'signing_key.revoke' AND target_id = $1",
      [compromised],
    );
    expect(audit.rows).toEqual([
      {
        actor: "client:root",
        outcome: "success",
        details: expect.objectContaining({ live_sessions_signed: 2, previous_status: "active" }),
      },
    ]);
  });

  it("refuses a token signed by a revoked key that was never the active one", async () => {
    const c = admin();
    const staged = (await c.createSigningKey({})).key!.kid;
    await sidecar.jwks.refreshNow();
    expect(sidecarKids()).toContain(staged);
    const r = await c.revokeSigningKey({ kid: staged, reason: "generated on a compromised host" });
    c.close();
    expect(r).toMatchObject({ liveSessionsSigned: 0, propagated: true });
    expect(r.activatedKey).toBeUndefined();
    // No token carries that kid (it never signed): ask the sidecar's state directly.
    const carrying = { jti: "j", subject: "s", clientId: "web", kid: staged, issuedAt: clock.now() / 1000 };
    await expect.poll(() => state.check(carrying) === "key_revoked", { timeout: 2000 }).toBeTruthy();
    await sidecar.jwks.refreshNow();
    expect(sidecarKids()).not.toContain(staged);
    expect(await atSidecar((await login("dot")).token)).toBe("ok");
  });
});

describe("scheduled rotation seen from a sidecar", () => {
  it("keeps the old key's tokens verifying while it is retiring, and refuses them once it is retired", async () => {
    const c = admin();
    const old = await activeKey();
    for (const k of (await c.listSigningKeys({})).keys.filter((k) => k.status === SigningKeyStatus.STAGED)) {
      await c.retireSigningKey({ kid: k.kid });
    }
    const activatedAt = Number(old.activatedAt!.seconds) * 1000;

    // An hour before the old key is due, the next one is staged: published, not signing.
    clock.set(activatedAt + 30 * DAY - 3_600_000 + 1000);
    const staged = (await c.rotateSigningKeys({})).staged!.kid;
    await sidecar.jwks.refreshNow();
    expect(sidecarKids()).toEqual(expect.arrayContaining([old.kid, staged]));
    expect((await login("eve")).kid).toBe(old.kid);

    // Due: the staged key signs, the old one is retiring. Tokens the old key signed just before
    // keep verifying; the new key's tokens verify without a JWKS refetch (it was cached staged).
    clock.advance(3_600_000);
    const seen = await login("fay");
    const unseen = await login("gus");
    expect([seen.kid, unseen.kid]).toEqual([old.kid, old.kid]);
    const step = await c.rotateSigningKeys({});
    expect(step.activated?.kid).toBe(staged);
    expect(step.retiring?.kid).toBe(old.kid);
    const fetches = sidecar.jwks.status().fetches;
    const fresh = await login("hal");
    expect(fresh.kid).toBe(staged);
    expect(await atSidecar(fresh.token)).toBe("ok");
    expect(sidecar.jwks.status().fetches).toBe(fetches);
    expect(await atSidecar(seen.token)).toBe("ok");
    await sidecar.jwks.refreshNow();
    expect(sidecarKids()).toContain(old.kid); // retiring keys stay published
    clock.advance(9 * 60_000); // 9 of the token's 10 minutes
    expect(await atSidecar(seen.token)).toBe("ok");

    // Once every token the old key signed has expired, it is retired and leaves the JWKS.
    clock.advance(RETIRE_AFTER_MS - 9 * 60_000 - 1000);
    expect((await c.rotateSigningKeys({})).retired).toEqual([]);
    clock.advance(1000);
    expect((await c.rotateSigningKeys({})).retired.map((k) => k.kid)).toEqual([old.kid]);
    c.close();
    await sidecar.jwks.refreshNow();
    expect(sidecarKids()).not.toContain(old.kid);
    expect(sidecarKids()).toContain(staged);
    // A token the sidecar never saw fails on its key; one it had cached fails on its expiry.
    expect(await atSidecar(unseen.token)).toBe("unknown_key");
    expect(await atSidecar(seen.token)).toBe("token_expired");
    expect(await atSidecar((await login("ivy")).token)).toBe("ok");
  });
});
