import { randomBytes } from "node:crypto";
import { durationFromMs, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { createLocalJWKSet, decodeJwt, decodeProtectedHeader, type JSONWebKeySet, jwtVerify } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  AuditOutcome,
  ClientRole,
  SigningAlgorithm,
  SigningKeyStatus,
} from "../../services/gen/proto/gatehouse/v1/admin_service_pb.ts";
import { createLogger } from "../../services/shared/logging/index.ts";
import { CLIENT_CHANGE_BOUND_MS } from "../../services/token/clients/client-change-watch.ts";
import { decryptPrivateKey } from "../../services/token/keys/key-encryption.ts";
import { rewrapKeys } from "../../services/token/keys/key-rewrap.ts";
import {
  type RunningTokenService,
  startTokenService,
  type TokenServiceSettings,
} from "../../services/token/token-service.ts";
import { grpcAdminClient } from "../support/admin-clients.ts";
import { type TestDatabase, useTestDatabase } from "../support/database.ts";
import { type GrpcFailure, grpcTokenClient } from "../support/token-clients.ts";
import { createTestClient, testClock } from "../support/token-fixtures.ts";

const ISSUER = "https://auth.test";
const MAX_TTL_MS = 30 * 60_000;
const JWKS_MAX_AGE_MS = 5 * 60_000;
/** JWKS max-age plus the key ring's poll: the least a staged key is published before it may sign. */
const MIN_PUBLISH_MS = JWKS_MAX_AGE_MS + 5000;
const DAY = 86_400_000;

let tdb: TestDatabase;
let service: RunningTokenService;
let masterKey = randomBytes(32);
const clock = testClock(Date.now());
const published: string[] = [];
const creds: Record<string, { id: string; secret: string }> = {};
const log = createLogger({ level: "silent", component: "test", pretty: false });

function config(
  key: TokenServiceSettings["masterKey"],
  overrides: Partial<TokenServiceSettings> = {},
): TokenServiceSettings {
  return {
    databasePoolSize: 8,
    redisUrl: undefined,
    grpcListen: { host: "127.0.0.1", port: 0 },
    httpListen: { host: "127.0.0.1", port: 0 },
    maxConnections: 10_000,
    h2MaxConcurrentStreams: 1000,
    issuer: ISSUER,
    masterKey: key,
    trustedIssuers: [],
    assertionMaxLifetime: 3_600_000,
    assertionClockSkew: 60_000,
    assertionJwksCooldown: 30_000,
    maxAccessTokenTtl: MAX_TTL_MS,
    jwksMaxAge: JWKS_MAX_AGE_MS,
    keyRotation: false,
    keyRotationInterval: 30 * DAY,
    keyPublishDelay: 3_600_000,
    credentialCacheTtl: 30_000,
    revocationStream: "gatehouse:revocations",
    publishTimeout: 500,
    auditRetention: 400 * 86_400_000,
    shutdownGrace: 1000,
    revocation: "none",
    ...overrides,
  };
}

function start(
  key: TokenServiceSettings["masterKey"],
  overrides: Partial<TokenServiceSettings> = {},
): Promise<RunningTokenService> {
  return startTokenService({
    settings: config(key, overrides),
    database: { kind: "postgres", url: tdb.url },
    logger: log,
    now: clock.now,
    async publish(ids) {
      published.push(...ids);
      return true;
    },
  });
}

beforeAll(async () => {
  tdb = await useTestDatabase();
  for (const [id, roles] of [
    ["root", ["admin"]],
    ["web", ["issuer"]],
  ] as const) {
    creds[id] = { id, secret: (await createTestClient(tdb.db.prisma, { id, roles: [...roles] })).secret };
  }
  service = await start(masterKey);
});
afterAll(async () => {
  await service?.shutdown();
  await tdb?.drop();
});

const admin = () => grpcAdminClient(service.grpcPort, creds.root);
const tokens = (who: string) => grpcTokenClient(service.grpcPort, creds[who]);
const failure = (p: Promise<unknown>) =>
  p.then(
    () => expect.fail("expected the call to fail"),
    (e: GrpcFailure) => e,
  );

async function jwks(): Promise<JSONWebKeySet> {
  const res = await fetch(`http://127.0.0.1:${service.httpPort}/.well-known/jwks.json`);
  return (await res.json()) as JSONWebKeySet;
}

async function verifies(token: string): Promise<boolean> {
  try {
    await jwtVerify(token, createLocalJWKSet(await jwks()), {
      issuer: ISSUER,
      currentDate: new Date(clock.now()),
    });
    return true;
  } catch {
    return false;
  }
}

async function issueFor(subject: string, who = "web") {
  const c = tokens(who);
  try {
    return await c.issue({ subject, audience: ["orders"] });
  } finally {
    c.close();
  }
}

const auditRows = (where: string, params: unknown[]) =>
  tdb.sql.query(`SELECT * FROM audit_events WHERE ${where} ORDER BY id`, params).then((r) => r.rows);

describe("who may call AdminService", () => {
  const calls: [string, object][] = [
    ["createClient", { name: "x", roles: [ClientRole.ISSUER] }],
    ["getClient", { clientId: "web" }],
    ["listClients", {}],
    ["updateClient", { clientId: "web", name: "x", updateMask: { paths: ["name"] } }],
    ["rotateClientSecret", { clientId: "web" }],
    ["disableClient", { clientId: "web" }],
    ["enableClient", { clientId: "web" }],
    ["createSigningKey", {}],
    ["activateSigningKey", { kid: "k" }],
    ["retireSigningKey", { kid: "k" }],
    ["revokeSigningKey", { kid: "k" }],
    ["listSigningKeys", {}],
    ["rotateSigningKeys", {}],
    ["listAuditEvents", {}],
  ];

  it.each(calls)("refuses %s without the admin role, and audits the refusal", async (method, req) => {
    const c = grpcAdminClient(service.grpcPort, creds.web);
    const call = (c as unknown as Record<string, (r: object) => Promise<unknown>>)[method]!;
    expect(await failure(call(req))).toMatchObject({ code: 7, reason: "unauthorized_client" });
    c.close();
    const rows = await auditRows("actor = 'client:web' AND outcome = 'denied'", []);
    expect(rows.length).toBeGreaterThan(0);
  });

  it("refuses callers without credentials or with a wrong secret", async () => {
    for (const who of [undefined, { id: "root", secret: "gths_wrong" }]) {
      const c = grpcAdminClient(service.grpcPort, who);
      expect(await failure(c.listClients({}))).toMatchObject({ code: 16, reason: "invalid_client" });
      c.close();
    }
  });
});

describe("clients", () => {
  it("creates a client, shows its secret once, and the secret authenticates", async () => {
    const c = admin();
    const r = await c.createClient({
      clientId: "checkout-web",
      name: "Checkout web backend",
      roles: [ClientRole.ISSUER],
      allowedAudiences: ["orders"],
      allowedScopes: ["orders:read"],
    });
    expect(r.clientSecret).toMatch(/^gths_/);
    expect(r.client).toMatchObject({
      clientId: "checkout-web",
      roles: [ClientRole.ISSUER],
      accessTokenTtl: { seconds: 600n },
      refreshIdleTtl: { seconds: BigInt(14 * 86400) },
      refreshGracePeriod: { seconds: 10n },
    });
    expect(JSON.stringify(r.client, (_k, v) => (typeof v === "bigint" ? String(v) : v))).not.toMatch(
      /scrypt|gths_/,
    );
    creds["checkout-web"] = { id: "checkout-web", secret: r.clientSecret };
    const issued = await issueFor("ann", "checkout-web");
    expect(issued.accessToken).toBeTruthy();
    const got = await c.getClient({ clientId: "checkout-web" });
    expect(got.client?.name).toBe("Checkout web backend");
    const [row] = await auditRows("action = 'client.create' AND target_id = 'checkout-web'", []);
    expect(row).toMatchObject({ actor: "client:root", outcome: "success", client_id: "checkout-web" });
    expect(row.request_id).toBeTruthy();
    c.close();
  });

  it("generates an id when none is given and refuses a taken one", async () => {
    const c = admin();
    const r = await c.createClient({ name: "Batch jobs", roles: [ClientRole.SERVICE] });
    expect(r.client?.clientId).toMatch(/^[a-z][a-z0-9._-]{2,63}$/);
    expect(
      await failure(c.createClient({ clientId: "web", name: "dup", roles: [ClientRole.ISSUER] })),
    ).toMatchObject({ code: 6, reason: "already_exists" });
    c.close();
  });

  it.each([
    ["client_id", { clientId: "Bad_ID", name: "n", roles: [ClientRole.ISSUER] }],
    ["client_id", { clientId: "ab", name: "n", roles: [ClientRole.ISSUER] }],
    ["name", { name: "", roles: [ClientRole.ISSUER] }],
    ["roles", { name: "n", roles: [] }],
    ["roles", { name: "n", roles: [ClientRole.UNSPECIFIED] }],
    ["allowed_claims", { name: "n", roles: [ClientRole.ISSUER], allowedClaims: ["sub"] }],
    ["allowed_scopes", { name: "n", roles: [ClientRole.ISSUER], allowedScopes: ["has space"] }],
    ["access_token_ttl", { name: "n", roles: [ClientRole.ISSUER], accessTokenTtl: durationFromMs(30_000) }],
    // Within the 60-minute ceiling but above this service's GATEHOUSE_MAX_ACCESS_TOKEN_TTL (30 min).
    [
      "access_token_ttl",
      { name: "n", roles: [ClientRole.ISSUER], accessTokenTtl: durationFromMs(45 * 60_000) },
    ],
    [
      "refresh_grace_period",
      { name: "n", roles: [ClientRole.ISSUER], refreshGracePeriod: durationFromMs(61_000) },
    ],
    [
      "refresh_idle_ttl",
      { name: "n", roles: [ClientRole.ISSUER], refreshIdleTtl: durationFromMs(100 * DAY) },
    ],
    ["rate_limit_burst", { name: "n", roles: [ClientRole.ISSUER], rateLimitBurst: 5 }],
  ])("refuses a bad %s with invalid_request naming the field", async (field, req) => {
    const c = admin();
    expect(await failure(c.createClient(req))).toMatchObject({
      code: 3,
      reason: "invalid_request",
      metadata: { field },
    });
    c.close();
  });

  it("accepts a zero grace period and the service's longest access-token lifetime", async () => {
    const c = admin();
    const r = await c.createClient({
      clientId: "strict-app",
      name: "Strict",
      roles: [ClientRole.ISSUER],
      refreshGracePeriod: durationFromMs(0),
      accessTokenTtl: durationFromMs(MAX_TTL_MS),
    });
    expect(r.client?.refreshGracePeriod?.seconds).toBe(0n);
    expect(r.client?.accessTokenTtl?.seconds).toBe(BigInt(MAX_TTL_MS / 1000));
    c.close();
  });

  it("answers not_found for an unknown client", async () => {
    const c = admin();
    for (const call of [
      () => c.getClient({ clientId: "nobody-here" }),
      () => c.updateClient({ clientId: "nobody-here", name: "x", updateMask: { paths: ["name"] } }),
      () => c.rotateClientSecret({ clientId: "nobody-here" }),
      () => c.disableClient({ clientId: "nobody-here" }),
      () => c.enableClient({ clientId: "nobody-here" }),
    ]) {
      expect(await failure(call())).toMatchObject({ code: 5, reason: "not_found" });
    }
    c.close();
  });

  it("lists clients in pages with filters, and refuses a page token from another listing", async () => {
    const c = admin();
    for (let i = 0; i < 5; i++) {
      await c.createClient({ clientId: `pager-${i}`, name: `Pager ${i}`, roles: [ClientRole.INTROSPECTOR] });
    }
    const seen: string[] = [];
    let pageToken = "";
    do {
      const page = await c.listClients({ pageSize: 2, pageToken, role: ClientRole.INTROSPECTOR });
      expect(page.clients.length).toBeLessThanOrEqual(2);
      seen.push(...page.clients.map((x) => x.clientId));
      pageToken = page.nextPageToken;
    } while (pageToken !== "");
    expect(seen).toEqual(["pager-0", "pager-1", "pager-2", "pager-3", "pager-4"]);
    const byName = await c.listClients({ namePrefix: "PAGER 3" });
    expect(byName.clients.map((x) => x.clientId)).toEqual(["pager-3"]);
    const first = await c.listClients({ pageSize: 1, role: ClientRole.INTROSPECTOR });
    expect(
      await failure(c.listClients({ pageSize: 1, pageToken: first.nextPageToken, role: ClientRole.ADMIN })),
    ).toMatchObject({ reason: "invalid_request", metadata: { field: "page_token" } });
    expect(await failure(c.listClients({ pageToken: "garbage!" }))).toMatchObject({
      reason: "invalid_request",
    });
    c.close();
  });

  it("updates the fields named in update_mask and refuses bad masks", async () => {
    const c = admin();
    const r = await c.updateClient({
      clientId: "pager-0",
      name: "Renamed",
      accessTokenTtl: durationFromMs(5 * 60_000),
      allowedScopes: ["ignored:because-not-in-mask"],
      updateMask: { paths: ["name", "access_token_ttl"] },
    });
    expect(r.client).toMatchObject({ name: "Renamed", accessTokenTtl: { seconds: 300n }, allowedScopes: [] });
    const restored = await c.updateClient({
      clientId: "pager-0",
      updateMask: { paths: ["access_token_ttl"] },
    });
    expect(restored.client?.accessTokenTtl?.seconds).toBe(600n);
    for (const paths of [[], ["client_id"], ["secret_hash"]]) {
      expect(await failure(c.updateClient({ clientId: "pager-0", updateMask: { paths } }))).toMatchObject({
        reason: "invalid_request",
        metadata: { field: "update_mask" },
      });
    }
    expect(
      await failure(
        c.updateClient({
          clientId: "pager-0",
          accessTokenTtl: durationFromMs(2 * 3_600_000),
          updateMask: { paths: ["access_token_ttl"] },
        }),
      ),
    ).toMatchObject({ reason: "invalid_request", metadata: { field: "access_token_ttl" } });
    const [row] = await auditRows(
      "action = 'client.update' AND target_id = 'pager-0' AND outcome = 'success'",
      [],
    );
    expect(row.details.fields).toEqual(["name", "access_token_ttl"]);
    c.close();
  });

  it("applies a role change to the next call at once", async () => {
    const c = admin();
    const r = await c.createClient({
      clientId: "demoted",
      name: "d",
      roles: [ClientRole.ISSUER],
      allowedAudiences: ["orders"],
    });
    creds.demoted = { id: "demoted", secret: r.clientSecret };
    await issueFor("bea", "demoted");
    await c.updateClient({
      clientId: "demoted",
      roles: [ClientRole.SERVICE],
      updateMask: { paths: ["roles"] },
    });
    const t = tokens("demoted");
    expect(await failure(t.issue({ subject: "bea", audience: ["orders"] }))).toMatchObject({
      reason: "unauthorized_client",
    });
    t.close();
    c.close();
  });

  it("rotates a secret: the previous one keeps working for the overlap, then stops", async () => {
    const c = admin();
    const created = await c.createClient({
      clientId: "roller",
      name: "r",
      roles: [ClientRole.ISSUER],
      allowedAudiences: ["orders"],
    });
    const old = { id: "roller", secret: created.clientSecret };
    const r = await c.rotateClientSecret({ clientId: "roller" });
    expect(r.clientSecret).not.toBe(old.secret);
    expect(Number(r.previousSecretExpiresAt!.seconds) * 1000).toBe(
      Math.floor((clock.now() + DAY) / 1000) * 1000,
    );
    const fresh = { id: "roller", secret: r.clientSecret };
    for (const who of [old, fresh]) {
      const t = grpcTokenClient(service.grpcPort, who);
      await t.issue({ subject: "cy", audience: ["orders"] });
      t.close();
    }
    clock.advance(DAY + 1000);
    const stale = grpcTokenClient(service.grpcPort, old);
    expect(await failure(stale.issue({ subject: "cy", audience: ["orders"] }))).toMatchObject({
      reason: "invalid_client",
    });
    stale.close();
    // Overlap 0 (after a leak): the secret just replaced stops at once, cached or not.
    const again = await c.rotateClientSecret({
      clientId: "roller",
      previousSecretOverlap: durationFromMs(0),
    });
    const t = grpcTokenClient(service.grpcPort, fresh);
    expect(await failure(t.issue({ subject: "cy", audience: ["orders"] }))).toMatchObject({
      reason: "invalid_client",
    });
    t.close();
    expect(again.client?.previousSecretExpiresAt).toBeDefined();
    expect(
      await failure(
        c.rotateClientSecret({ clientId: "roller", previousSecretOverlap: durationFromMs(8 * DAY) }),
      ),
    ).toMatchObject({ reason: "invalid_request", metadata: { field: "previous_secret_overlap" } });
    c.close();
  });

  it("rotates to a chosen secret once: the same secret again writes and audits nothing", async () => {
    const c = admin();
    await c.createClient({
      clientId: "chooser",
      name: "c",
      roles: [ClientRole.ISSUER],
      allowedAudiences: ["orders"],
    });
    const chosen = `chosen-${randomBytes(24).toString("base64url")}`;
    const audits = () =>
      tdb.db.prisma.auditEvent.count({ where: { targetId: "chooser", action: "client.rotate_secret" } });
    const dry = await c.rotateClientSecret({ clientId: "chooser", clientSecret: chosen, validateOnly: true });
    expect(dry.rotated).toBe(true);
    expect(await audits()).toBe(0);
    const first = await c.rotateClientSecret({ clientId: "chooser", clientSecret: chosen });
    // The caller has the secret: it is not echoed back.
    expect(first).toMatchObject({ rotated: true, clientSecret: "" });
    const t = grpcTokenClient(service.grpcPort, { id: "chooser", secret: chosen });
    await t.issue({ subject: "cy", audience: ["orders"] });
    t.close();
    const before = await tdb.db.prisma.client.findUniqueOrThrow({ where: { id: "chooser" } });
    const again = await c.rotateClientSecret({ clientId: "chooser", clientSecret: chosen });
    const dryAgain = await c.rotateClientSecret({
      clientId: "chooser",
      clientSecret: chosen,
      validateOnly: true,
    });
    expect([again.rotated, dryAgain.rotated]).toEqual([false, false]);
    expect(await tdb.db.prisma.client.findUniqueOrThrow({ where: { id: "chooser" } })).toEqual(before);
    expect(await audits()).toBe(1);
    for (const [req, field] of [
      [{ clientSecret: "short" }, "client_secret"],
      [{ clientSecret: `has space ${"x".repeat(40)}` }, "client_secret"],
      [{ validateOnly: true }, "validate_only"],
    ] as const) {
      expect(await failure(c.rotateClientSecret({ clientId: "chooser", ...req }))).toMatchObject({
        reason: "invalid_request",
        metadata: { field },
      });
    }
    c.close();
  });

  it("disables a client: revokes its sessions and queues client_disabled with its audit row in one go", async () => {
    const c = admin();
    const created = await c.createClient({
      clientId: "shop",
      name: "Shop",
      roles: [ClientRole.ISSUER],
      allowedAudiences: ["orders"],
    });
    creds.shop = { id: "shop", secret: created.clientSecret };
    const s1 = await issueFor("dan", "shop");
    await issueFor("eve", "shop");
    published.length = 0;
    const r = await c.disableClient({ clientId: "shop", reason: "leaked secret" });
    expect(r).toMatchObject({ sessionsRevoked: 2, propagated: true });
    expect(r.client?.disabledAt).toBeDefined();
    expect(r.client?.disabledReason).toBe("leaked secret");
    const outbox = await tdb.sql.query(
      "SELECT event_id::text, payload FROM revocation_outbox WHERE type = 'client_disabled' AND payload->>'clientId' = 'shop'",
    );
    expect(outbox.rows).toHaveLength(1);
    expect(published).toEqual([outbox.rows[0].event_id]);
    // The cut-off covers what other replicas may issue on cached credentials meanwhile.
    // Other replicas drop the client's cached credentials within the change watch's bound.
    expect(Number(outbox.rows[0].payload.notBefore)).toBeGreaterThanOrEqual(
      clock.now() + CLIENT_CHANGE_BOUND_MS,
    );
    const live = await tdb.sql.query(
      "SELECT count(*)::int AS n FROM sessions WHERE client_id = 'shop' AND revoked_at IS NULL",
    );
    expect(live.rows[0].n).toBe(0);
    const [row] = await auditRows("action = 'client.disable' AND target_id = 'shop'", []);
    expect(row.details).toMatchObject({ reason: "leaked secret", sessions_revoked: 2, changed: true });
    const t = tokens("shop");
    expect(await failure(t.refresh({ refreshToken: s1.refreshToken }))).toMatchObject({
      reason: "invalid_client",
    });
    t.close();
    const again = await c.disableClient({ clientId: "shop" });
    expect(again).toMatchObject({ sessionsRevoked: 0, propagated: true });
    expect(await failure(c.rotateClientSecret({ clientId: "shop" }))).toMatchObject({
      reason: "failed_precondition",
    });
    expect(await failure(c.disableClient({ clientId: "root" }))).toMatchObject({
      reason: "failed_precondition",
    });
    const enabled = await c.enableClient({ clientId: "shop" });
    expect(enabled.client?.disabledAt).toBeUndefined();
    clock.advance(31_000);
    await issueFor("dan", "shop");
    c.close();
  });
});

describe("client allow-lists at Issue and Refresh", () => {
  const PERMISSION_DENIED = 7;
  const claimsOf = (token: string) => decodeJwt(token);

  async function setLists(clientId: string, lists: Record<string, string[]>) {
    const c = admin();
    await c.updateClient({
      clientId,
      ...lists,
      updateMask: {
        paths: Object.keys(lists).map((k) => k.replace(/[A-Z]/g, (m) => `_${m.toLowerCase()}`)),
      },
    });
    c.close();
  }

  it("refreshes with no more than the client may grant now: a removed scope, audience and claim are gone", async () => {
    const c = admin();
    const created = await c.createClient({
      clientId: "narrowed",
      name: "n",
      roles: [ClientRole.ISSUER],
      allowedAudiences: ["orders", "billing"],
      allowedScopes: ["orders:read", "orders:write"],
      allowedClaims: ["plan"],
      allowedTenants: ["acme"],
    });
    c.close();
    creds.narrowed = { id: "narrowed", secret: created.clientSecret };
    const t = tokens("narrowed");
    const first = await t.issue({
      subject: "fay",
      audience: ["orders", "billing"],
      scopes: ["orders:read", "orders:write"],
      claims: { plan: "gold" },
      tenant: "acme",
    });
    expect(claimsOf(first.accessToken)).toMatchObject({ scope: "orders:read orders:write", plan: "gold" });

    await setLists("narrowed", { allowedScopes: ["orders:read"] });
    const r1 = await t.refresh({ refreshToken: first.refreshToken });
    expect(claimsOf(r1.accessToken)).toMatchObject({ scope: "orders:read", aud: ["orders", "billing"] });
    expect(r1.scopes).toEqual(["orders:read"]);
    expect(
      await failure(t.refresh({ refreshToken: r1.refreshToken, scopes: ["orders:write"] })),
    ).toMatchObject({
      code: PERMISSION_DENIED,
      reason: "scope_not_allowed",
    });

    await setLists("narrowed", { allowedAudiences: ["orders"] });
    const r2 = await t.refresh({ refreshToken: r1.refreshToken });
    expect(claimsOf(r2.accessToken)).toMatchObject({ aud: "orders", plan: "gold" });
    expect(r2.audience).toEqual(["orders"]);

    await setLists("narrowed", { allowedClaims: [] });
    const r3 = await t.refresh({ refreshToken: r2.refreshToken });
    expect(claimsOf(r3.accessToken)).not.toHaveProperty("plan");
    // A grace replay of that rotation mints the narrowed grant too.
    const replay = await t.refresh({ refreshToken: r2.refreshToken });
    expect(replay.refreshToken).toBe(r3.refreshToken);
    expect(claimsOf(replay.accessToken)).not.toHaveProperty("plan");

    // No audience left: refused before anything changes, so the token still works once restored.
    await setLists("narrowed", { allowedAudiences: ["inventory"] });
    expect(await failure(t.refresh({ refreshToken: r3.refreshToken }))).toMatchObject({
      code: PERMISSION_DENIED,
      reason: "audience_not_allowed",
    });
    await setLists("narrowed", { allowedAudiences: ["orders"] });
    // Past the grace window: only a token the refusal left unused can still rotate.
    clock.advance(11_000);
    const r4 = await t.refresh({ refreshToken: r3.refreshToken });
    expect(claimsOf(r4.accessToken)).toMatchObject({ aud: "orders", scope: "orders:read" });
    t.close();
  });

  it("holds each client to its tenants and subject prefixes on Issue and Refresh", async () => {
    const c = admin();
    const created = await c.createClient({
      clientId: "tenanted",
      name: "t",
      roles: [ClientRole.ISSUER],
      allowedAudiences: ["orders"],
    });
    c.close();
    expect(created.client).toMatchObject({ allowedTenants: [], allowedSubjectPrefixes: [] });
    creds.tenanted = { id: "tenanted", secret: created.clientSecret };
    const t = tokens("tenanted");
    // No allowed tenants: no tenant at all; any subject.
    expect(await failure(t.issue({ subject: "gus", audience: ["orders"], tenant: "acme" }))).toMatchObject({
      code: PERMISSION_DENIED,
      reason: "tenant_not_allowed",
    });
    expect(
      claimsOf((await t.issue({ subject: "gus", audience: ["orders"] })).accessToken),
    ).not.toHaveProperty("tenant");

    await setLists("tenanted", { allowedTenants: ["acme"], allowedSubjectPrefixes: ["cust:"] });
    expect(await failure(t.issue({ subject: "emp:1", audience: ["orders"], tenant: "acme" }))).toMatchObject({
      code: PERMISSION_DENIED,
      reason: "subject_not_allowed",
    });
    expect(
      await failure(t.issue({ subject: "cust:1", audience: ["orders"], tenant: "globex" })),
    ).toMatchObject({
      code: PERMISSION_DENIED,
      reason: "tenant_not_allowed",
    });
    const s = await t.issue({ subject: "cust:1", audience: ["orders"], tenant: "acme" });
    expect(claimsOf(s.accessToken)).toMatchObject({ sub: "cust:1", tenant: "acme" });

    await setLists("tenanted", { allowedTenants: ["globex"] });
    expect(await failure(t.refresh({ refreshToken: s.refreshToken }))).toMatchObject({
      code: PERMISSION_DENIED,
      reason: "tenant_not_allowed",
    });
    await setLists("tenanted", { allowedTenants: ["*"], allowedSubjectPrefixes: ["vip:"] });
    expect(await failure(t.refresh({ refreshToken: s.refreshToken }))).toMatchObject({
      code: PERMISSION_DENIED,
      reason: "subject_not_allowed",
    });
    await setLists("tenanted", { allowedSubjectPrefixes: [] });
    clock.advance(11_000);
    const r = await t.refresh({ refreshToken: s.refreshToken });
    expect(claimsOf(r.accessToken)).toMatchObject({ sub: "cust:1", tenant: "acme" });
    t.close();
  });
});

describe("signing keys", () => {
  let firstKid: string;
  let stagedKid: string;
  let oldToken: string;

  it("starts with one active Ed25519 key", async () => {
    const c = admin();
    const { keys } = await c.listSigningKeys({});
    expect(keys).toHaveLength(1);
    expect(keys[0]).toMatchObject({
      status: SigningKeyStatus.ACTIVE,
      algorithm: SigningAlgorithm.EDDSA,
      published: true,
    });
    firstKid = keys[0]!.kid;
    c.close();
  });

  it("validates key parameters", async () => {
    const c = admin();
    expect(
      await failure(c.createSigningKey({ algorithm: SigningAlgorithm.ES256, rsaBits: 2048 })),
    ).toMatchObject({
      reason: "invalid_request",
      metadata: { field: "rsa_bits" },
    });
    expect(
      await failure(c.createSigningKey({ algorithm: SigningAlgorithm.RS256, rsaBits: 1024 })),
    ).toMatchObject({
      reason: "invalid_request",
      metadata: { field: "rsa_bits" },
    });
    for (const call of [
      () => c.activateSigningKey({ kid: "nope" }),
      () => c.retireSigningKey({ kid: "nope" }),
      () => c.revokeSigningKey({ kid: "nope" }),
    ]) {
      expect(await failure(call())).toMatchObject({ code: 5, reason: "not_found" });
    }
    expect(await failure(c.activateSigningKey({ kid: "" }))).toMatchObject({ reason: "invalid_request" });
    c.close();
  });

  it("publishes a staged key in the JWKS before it signs anything", async () => {
    const c = admin();
    oldToken = (await issueFor("fay")).accessToken;
    const { key } = await c.createSigningKey({ algorithm: SigningAlgorithm.ES256 });
    expect(key).toMatchObject({
      status: SigningKeyStatus.STAGED,
      published: true,
      algorithm: SigningAlgorithm.ES256,
    });
    expect(key?.publicJwk).toMatchObject({ kty: "EC", crv: "P-256", alg: "ES256", use: "sig" });
    stagedKid = key!.kid;
    expect((await jwks()).keys.map((k) => k.kid)).toContain(stagedKid);
    const next = await issueFor("fay");
    expect(decodeProtectedHeader(next.accessToken).kid).toBe(firstKid);
    const rsa = await c.createSigningKey({ algorithm: SigningAlgorithm.RS256, rsaBits: 3072 });
    expect(Buffer.from(rsa.key!.publicJwk!.n, "base64url").length * 8).toBe(3072);
    await c.retireSigningKey({ kid: rsa.key!.kid }); // withdrawn before it ever signed
    expect((await jwks()).keys.map((k) => k.kid)).not.toContain(rsa.key!.kid);
    c.close();
  });

  it("refuses to activate a key published for less than the JWKS cache period unless forced", async () => {
    const c = admin();
    const f = await failure(c.activateSigningKey({ kid: stagedKid }));
    expect(f).toMatchObject({ code: 9, reason: "failed_precondition" });
    expect(f.metadata.activatable_at).toBeDefined();
    clock.advance(MIN_PUBLISH_MS);
    const r = await c.activateSigningKey({ kid: stagedKid });
    expect(r.key).toMatchObject({ kid: stagedKid, status: SigningKeyStatus.ACTIVE });
    expect(r.previousKey).toMatchObject({ kid: firstKid, status: SigningKeyStatus.RETIRING });
    const active = await tdb.sql.query("SELECT kid FROM signing_keys WHERE status = 'active'");
    expect(active.rows).toEqual([{ kid: stagedKid }]);
    const next = await issueFor("gus");
    expect(decodeProtectedHeader(next.accessToken).kid).toBe(stagedKid);
    expect(await failure(c.activateSigningKey({ kid: stagedKid }))).toMatchObject({
      reason: "failed_precondition",
    });
    c.close();
  });

  it("keeps one active key when two activations race", async () => {
    const c = admin();
    const a = (await c.createSigningKey({})).key!.kid;
    const b = (await c.createSigningKey({})).key!.kid;
    const results = await Promise.allSettled([
      c.activateSigningKey({ kid: a, force: true }),
      c.activateSigningKey({ kid: b, force: true }),
    ]);
    expect(results.every((r) => r.status === "fulfilled")).toBe(true);
    const active = await tdb.sql.query("SELECT kid FROM signing_keys WHERE status = 'active'");
    expect(active.rows).toHaveLength(1);
    // And the database itself refuses a second active key.
    await expect(
      tdb.sql.query("UPDATE signing_keys SET status = 'active' WHERE kid = $1", [stagedKid]),
    ).rejects.toThrow(/signing_keys_one_active/);
    // Put the ES256 key back in charge for what follows.
    const other = active.rows[0].kid === a ? b : a;
    await c.revokeSigningKey({ kid: other, reason: "test cleanup" });
    c.close();
  });

  it("keeps a retiring key's tokens verifying until it is retired, then drops it from the JWKS", async () => {
    const c = admin();
    expect(await verifies(oldToken)).toBe(true);
    expect(await failure(c.retireSigningKey({ kid: firstKid }))).toMatchObject({
      reason: "failed_precondition",
    });
    const current = (await c.listSigningKeys({})).keys.find((k) => k.status === SigningKeyStatus.ACTIVE)!;
    expect(await failure(c.retireSigningKey({ kid: current.kid }))).toMatchObject({
      reason: "failed_precondition",
    });
    clock.advance(MAX_TTL_MS + 5000);
    const r = await c.retireSigningKey({ kid: firstKid });
    expect(r.key).toMatchObject({ status: SigningKeyStatus.RETIRED, published: false });
    expect((await jwks()).keys.map((k) => k.kid)).not.toContain(firstKid);
    expect(await verifies(oldToken)).toBe(false);
    const listed = await c.listSigningKeys({ includeRetired: true });
    expect(listed.keys.find((k) => k.kid === firstKid)?.status).toBe(SigningKeyStatus.RETIRED);
    expect((await c.listSigningKeys({})).keys.find((k) => k.kid === firstKid)).toBeUndefined();
    c.close();
  });

  it("revokes a compromised active key: out of the JWKS at once, key_revoked queued, signing goes on", async () => {
    const c = admin();
    const active = (await c.listSigningKeys({})).keys.find((k) => k.status === SigningKeyStatus.ACTIVE)!;
    const a = await issueFor("hal");
    const b = await issueFor("ivy");
    expect(decodeProtectedHeader(a.accessToken).kid).toBe(active.kid);
    published.length = 0;
    const r = await c.revokeSigningKey({ kid: active.kid, reason: "key material leaked" });
    expect(r.key).toMatchObject({ status: SigningKeyStatus.REVOKED, revokedReason: "key material leaked" });
    expect(r.liveSessionsSigned).toBeGreaterThanOrEqual(2);
    expect(r.propagated).toBe(true);
    expect(r.activatedKey?.status).toBe(SigningKeyStatus.ACTIVE);
    const outbox = await tdb.sql.query(
      "SELECT event_id::text FROM revocation_outbox WHERE type = 'key_revoked' AND payload->>'kid' = $1",
      [active.kid],
    );
    expect(published).toEqual([outbox.rows[0].event_id]);
    expect((await jwks()).keys.map((k) => k.kid)).not.toContain(active.kid);
    expect(await verifies(b.accessToken)).toBe(false);
    const next = await issueFor("hal");
    expect(decodeProtectedHeader(next.accessToken).kid).toBe(r.activatedKey?.kid);
    const again = await c.revokeSigningKey({ kid: active.kid });
    expect(again).toMatchObject({ liveSessionsSigned: 0, propagated: true });
    c.close();
  });

  it("rotates on schedule: stage, publish for the delay, activate, retire; each step idempotent", async () => {
    const c = admin();
    const active = (await c.listSigningKeys({})).keys.find((k) => k.status === SigningKeyStatus.ACTIVE)!;
    for (const k of (await c.listSigningKeys({})).keys.filter((k) => k.status === SigningKeyStatus.STAGED)) {
      await c.retireSigningKey({ kid: k.kid });
    }
    const idle = await c.rotateSigningKeys({});
    expect(idle.staged).toBeUndefined();
    expect(idle.activated).toBeUndefined();
    const activatedAt =
      Number(active.activatedAt!.seconds) * 1000 + Math.floor(active.activatedAt!.nanos / 1e6);
    expect(Number(idle.nextRotationAt!.seconds) * 1000).toBeLessThanOrEqual(
      activatedAt + 30 * DAY - 3_600_000,
    );
    clock.set(activatedAt + 30 * DAY - 3_600_000);
    const staged = await c.rotateSigningKeys({});
    expect(staged.staged?.status).toBe(SigningKeyStatus.STAGED);
    expect(staged.activated).toBeUndefined();
    expect((await c.rotateSigningKeys({})).staged).toBeUndefined();
    clock.advance(3_600_000);
    const activated = await c.rotateSigningKeys({});
    expect(activated.activated?.kid).toBe(staged.staged?.kid);
    expect(activated.retiring?.kid).toBe(active.kid);
    clock.advance(MAX_TTL_MS + 5000);
    const retired = await c.rotateSigningKeys({});
    expect(retired.retired.map((k) => k.kid)).toContain(active.kid);
    expect((await c.rotateSigningKeys({})).retired).toEqual([]);
    c.close();
  });

  it("makes one new key when two rotations run at once", async () => {
    const c = admin();
    const before = await tdb.sql.query("SELECT count(*)::int AS n FROM signing_keys");
    const [x, y] = await Promise.all([
      c.rotateSigningKeys({ force: true }),
      c.rotateSigningKeys({ force: true }),
    ]);
    const after = await tdb.sql.query("SELECT count(*)::int AS n FROM signing_keys");
    expect(after.rows[0].n - before.rows[0].n).toBe(1);
    expect([x.staged, y.staged].filter(Boolean)).toHaveLength(1);
    c.close();
  });
});

describe("audit log", () => {
  it("lists events newest first with filters and paging, and never holds secrets", async () => {
    const c = admin();
    const all = await c.listAuditEvents({ action: "client.", pageSize: 500 });
    expect(all.events.length).toBeGreaterThan(5);
    expect(all.events.every((e) => e.action.startsWith("client."))).toBe(true);
    const times = all.events.map((e) => Number(e.occurredAt!.seconds));
    expect([...times].sort((a, b) => b - a)).toEqual(times);
    const paged: string[] = [];
    let pageToken = "";
    do {
      const page = await c.listAuditEvents({ action: "client.", pageSize: 3, pageToken });
      paged.push(...page.events.map((e) => e.id));
      pageToken = page.nextPageToken;
    } while (pageToken !== "");
    expect(paged).toEqual(all.events.map((e) => e.id));
    const shop = await c.listAuditEvents({
      clientId: "shop",
      action: "client.disable",
      actor: "client:root",
    });
    // Newest first: the idempotent repeat, then the disable that changed something.
    expect(shop.events.map((e) => e.details?.changed)).toEqual([false, true]);
    expect(shop.events[1]).toMatchObject({
      outcome: AuditOutcome.SUCCESS,
      targetType: "client",
      targetId: "shop",
    });
    expect(shop.events[1]?.details).toMatchObject({ reason: "leaked secret", sessions_revoked: 2 });
    const denied = await c.listAuditEvents({ actor: "client:web" });
    expect(denied.events.every((e) => e.outcome === AuditOutcome.DENIED)).toBe(true);
    const none = await c.listAuditEvents({ until: timestampFromMs(0) });
    expect(none.events).toEqual([]);
    expect(
      await failure(c.listAuditEvents({ since: timestampFromMs(clock.now()), until: timestampFromMs(0) })),
    ).toMatchObject({ reason: "invalid_request", metadata: { field: "since" } });
    const raw = await tdb.sql.query("SELECT details::text AS d FROM audit_events");
    for (const { d } of raw.rows) expect(String(d)).not.toMatch(/gths_|scrypt\$|"d":/);
    c.close();
  });
});

async function eventually<T>(probe: () => Promise<T | undefined>, what: string): Promise<T> {
  const until = Date.now() + 10_000;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe("scheduled rotation in the token service", () => {
  it("stages on schedule, survives a restart mid-rotation, then activates and signs with the new key", async () => {
    const c = admin();
    const keys = (await c.listSigningKeys({})).keys;
    for (const k of keys.filter((k) => k.status === SigningKeyStatus.STAGED))
      await c.retireSigningKey({ kid: k.kid });
    const active = keys.find((k) => k.status === SigningKeyStatus.ACTIVE)!;
    c.close();
    const activatedAt =
      Number(active.activatedAt!.seconds) * 1000 + Math.floor(active.activatedAt!.nanos / 1e6);
    clock.set(activatedAt + 30 * DAY - 3_600_000 + 1000);

    await service.shutdown();
    service = await start(masterKey, { keyRotation: true });
    const staged = await eventually(async () => {
      const r = await tdb.sql.query("SELECT kid, created_at FROM signing_keys WHERE status = 'staged'");
      return r.rows[0] as { kid: string } | undefined;
    }, "the timer to stage a key");
    const [audit] = await auditRows("action = 'signing_key.create' AND target_id = $1", [staged.kid]);
    expect(audit.actor).toBe("system:key-rotation");
    expect((await jwks()).keys.map((k) => k.kid)).toContain(staged.kid);
    expect(decodeProtectedHeader((await issueFor("kim")).accessToken).kid).toBe(active.kid);

    // Stopped mid-rotation (staged, not yet active): all state is in the rows.
    await service.shutdown();
    clock.advance(3_600_000);
    service = await start(masterKey, { keyRotation: true });
    await eventually(async () => {
      const r = await tdb.sql.query("SELECT kid FROM signing_keys WHERE status = 'active'");
      return r.rows[0]?.kid === staged.kid ? true : undefined;
    }, "the timer to activate the staged key");
    await eventually(async () => {
      const kid = decodeProtectedHeader((await issueFor("kim")).accessToken).kid;
      return kid === staged.kid ? true : undefined;
    }, "the service to sign with the new key");
    const previous = await tdb.sql.query("SELECT status FROM signing_keys WHERE kid = $1", [active.kid]);
    expect(previous.rows[0].status).toBe("retiring");

    await service.shutdown();
    service = await start(masterKey);
  });
});

describe("master key", () => {
  it("rewraps every key, and a restart with the new key works while the old one fails clearly", async () => {
    await service.shutdown();
    const newKey = randomBytes(32);
    const { prisma } = tdb.db;
    const result = await rewrapKeys(prisma, masterKey, newKey);
    const rows = await prisma.signingKey.findMany({ select: { kid: true, privateKeyEnc: true } });
    const refreshKeys = await prisma.refreshKey.count();
    expect(refreshKeys).toBe(2); // the successor key and the MAC key
    expect(result).toEqual({ rewrapped: rows.length + refreshKeys, alreadyNew: 0 });
    const raw = await tdb.sql.query("SELECT kid, private_key_enc FROM signing_keys");
    for (const r of raw.rows as { kid: string; private_key_enc: Buffer }[]) {
      const pkcs8 = decryptPrivateKey(r.private_key_enc, newKey, r.kid);
      expect(r.private_key_enc.includes(pkcs8)).toBe(false);
      expect(r.private_key_enc.includes(pkcs8.subarray(0, 16))).toBe(false);
    }
    expect(await rewrapKeys(prisma, masterKey, newKey)).toEqual({
      rewrapped: 0,
      alreadyNew: rows.length + refreshKeys,
    });
    await expect(rewrapKeys(prisma, randomBytes(32), randomBytes(32))).rejects.toThrow(/neither/);

    const wrong = await start(masterKey).then(
      () => expect.fail("start-up should fail with the old master key"),
      (err: Error) => err,
    );
    expect(wrong.message).toMatch(/GATEHOUSE_MASTER_KEY is not the key it was encrypted with/);
    expect(wrong.message).not.toContain("\n");

    masterKey = newKey;
    service = await start(newKey);
    const issued = await issueFor("joy");
    expect(await verifies(issued.accessToken)).toBe(true);
  });
});
