import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
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
import { type GrpcFailure, grpcTokenClient } from "../support/token-clients.ts";
import { createTestClient } from "../support/token-fixtures.ts";

/**
 * Issue 20 item 3: a client disabled and enabled again at once. A token that Issue hands out after
 * `clients enable` returned must pass the sidecar, while tokens issued before the disable stay
 * refused for their whole life. Real clocks throughout: the cut-off is about wall time.
 */
let tdb: TestDatabase;
let tredis: TestRedis;
let service: RunningTokenService;
let sidecar: RunningSidecar;
let state: MemoryRevocationState;
let follower: StreamFollower;
let sidecarBus: RevocationBus;
const creds: Record<string, { id: string; secret: string }> = {};

beforeAll(async () => {
  tdb = await useTestDatabase();
  tredis = await useTestRedis("reenable");
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
        GATEHOUSE_KEY_ROTATION: "off",
        GATEHOUSE_SHUTDOWN_GRACE: "1s",
      },
    }),
    database: { kind: "postgres", url: tdb.url },
    logger: silentLogger(),
  });
  const logger = silentLogger();
  sidecarBus = createRedisBus({ url: tredis.url, name: "gatehouse-sidecar", logger });
  state = createMemoryRevocationState({ stalenessBoundMs: 30_000 });
  follower = createStreamFollower({ bus: sidecarBus, stream, state, logger, blockMs: 200 });
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

async function issue(subject: string): Promise<string> {
  const c = grpcTokenClient(service.grpcPort, creds.web);
  try {
    return (await c.issue({ subject, audience: ["orders"] })).accessToken;
  } finally {
    c.close();
  }
}

/** The sidecar's forward-auth answer: "ok", or the reason it gives in WWW-Authenticate. */
async function atSidecar(token: string): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${sidecar.controlPort}/authz`, {
    headers: { authorization: `Bearer ${token}`, "x-forwarded-uri": "/orders/1" },
  });
  if (res.status === 200) return "ok";
  return (
    /error_description="([^"]+)"/.exec(res.headers.get("www-authenticate") ?? "")?.[1] ?? `${res.status}`
  );
}

describe("disabling and at once re-enabling a client", () => {
  it("accepts tokens issued after the enable and keeps refusing those issued before the disable", async () => {
    const before = await issue("ann");
    expect(await atSidecar(before)).toBe("ok");

    const admin = grpcAdminClient(service.grpcPort, creds.root);
    try {
      const disabled = await admin.disableClient({ clientId: "web", reason: "test" });
      expect(disabled.propagated).toBe(true);
      await expect
        .poll(async () => (await atSidecar(before)) === "client_disabled", { timeout: 2000 })
        .toBeTruthy();
      // While disabled, Issue refuses; the enable right after must not leave a window where Issue
      // answers 200 with tokens every sidecar refuses.
      const c = grpcTokenClient(service.grpcPort, creds.web);
      expect(
        await c.issue({ subject: "ann", audience: ["orders"] }).catch((e: GrpcFailure) => e.reason),
      ).toBe("invalid_client");
      c.close();
      await admin.enableClient({ clientId: "web" });
    } finally {
      admin.close();
    }
    const after = await issue("bob");
    expect(await atSidecar(after)).toBe("ok");
    expect(await atSidecar(before)).toBe("client_disabled");
  }, 20_000);

  it("refuses an enable whose client was disabled anew while it waited for the cut-off", async () => {
    const admin = grpcAdminClient(service.grpcPort, creds.root);
    try {
      await admin.disableClient({ clientId: "web", reason: "first" });
      const waiting = admin.enableClient({ clientId: "web" }).then(
        () => "enabled",
        (err: GrpcFailure) => err.reason,
      );
      // Meanwhile someone else enables it (by hand) and disables it again: a new cut-off.
      await new Promise((r) => setTimeout(r, 200));
      await tdb.sql.query("UPDATE clients SET disabled_at = NULL WHERE id = 'web'");
      await admin.disableClient({ clientId: "web", reason: "second" });
      expect(await waiting).toBe("failed_precondition");
      const row = await tdb.sql.query("SELECT disabled_reason FROM clients WHERE id = 'web'");
      expect(row.rows[0].disabled_reason).toBe("second");
      // Asked again, it waits for the new cut-off and then enables.
      await admin.enableClient({ clientId: "web" });
      expect(await atSidecar(await issue("carl"))).toBe("ok");
    } finally {
      admin.close();
    }
  }, 20_000);
});
