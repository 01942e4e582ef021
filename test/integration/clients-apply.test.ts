import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { exportJWK, generateKeyPair } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "../../services/shared/logging/index.ts";
import { verifyClientSecret } from "../../services/token/clients/client-secret.ts";
import { ClientsFileError } from "../../services/token/clients-file/clients-file.ts";
import { PRUNE_REASON } from "../../services/token/clients-file/clients-plan.ts";
import { type RunningTokenService, startTokenService } from "../../services/token/token-service.ts";
import { type TestDatabase, useTestDatabase } from "../support/database.ts";
import { createTestClient } from "../support/token-fixtures.ts";
import { testServiceSettings } from "../support/token-service-settings.ts";

/**
 * `gatehouse clients apply` as operators run it (spawned CLI, over the AdminService and --direct)
 * and GATEHOUSE_CLIENTS_FILE at token-service start, on the real Postgres. Steps build on each
 * other: each `it` applies a file to the state the previous one left.
 */
const BIN = fileURLToPath(new URL("../../bin/gatehouse.mjs", import.meta.url));
const SECRET_A = `a${randomBytes(30).toString("base64url")}`;
const SECRET_B = `b${randomBytes(30).toString("base64url")}`;
const masterKey = randomBytes(32);
/** The cluster issuer the token service trusts; nothing is fetched from it when clients register. */
const CLUSTER = "https://cluster.test";
const silent = createLogger({ level: "silent", component: "token", pretty: false });

let tdb: TestDatabase;
let service: RunningTokenService;
let root: { id: string; secret: string };
let dir: string;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function gatehouse(args: string[], env: Record<string, string | undefined> = {}) {
  const all: Record<string, string | undefined> = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    GATEHOUSE_SERVER: `127.0.0.1:${service.grpcPort}`,
    GATEHOUSE_ADMIN_SERVER: `127.0.0.1:${service.adminPort}`,
    GATEHOUSE_CLIENT_ID: root.id,
    GATEHOUSE_CLIENT_SECRET: root.secret,
    DATABASE_URL: tdb.url,
    BILLING_SECRET: SECRET_A,
    ...env,
  };
  return new Promise<Run>((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      env: Object.fromEntries(Object.entries(all).filter(([, v]) => v !== undefined)) as NodeJS.ProcessEnv,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => {
      stdout += d;
    });
    child.stderr.on("data", (d) => {
      stderr += d;
    });
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

async function file(name: string, text: string): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, text);
  return path;
}

const apply = (path: string, flags: string[] = [], env: Record<string, string | undefined> = {}) =>
  gatehouse(["clients", "apply", "-f", path, ...flags], env);

/** Every audit row about clients, oldest first. */
const audits = () =>
  tdb.db.prisma.auditEvent.findMany({ where: { targetType: "client" }, orderBy: { id: "asc" } });
const row = (id: string) => tdb.db.prisma.client.findUniqueOrThrow({ where: { id } });
const snapshot = async () =>
  JSON.stringify(await tdb.db.prisma.client.findMany({ orderBy: { id: "asc" } }), (_k, v) =>
    typeof v === "bigint" ? String(v) : v,
  );

const BASE = `clients:
  - id: orders
    name: Orders
    roles: [issuer]
    audiences: [api://orders]
  - id: billing
    roles: [service]
    scopes: [invoices.read]
    secret_from_env: BILLING_SECRET
`;

beforeAll(async () => {
  tdb = await useTestDatabase();
  dir = await mkdtemp(join(tmpdir(), "gatehouse-clients-"));
  root = {
    id: "root",
    secret: (await createTestClient(tdb.db.prisma, { id: "root", roles: ["admin"] })).secret,
  };
  service = await startTokenService({
    settings: testServiceSettings({
      databasePoolSize: 6,
      shutdownGrace: 1000,
      masterKey,
      trustedIssuers: [{ issuer: CLUSTER }],
    }),
    database: { kind: "postgres", url: tdb.url },
    logger: silent,
  });
});
afterAll(async () => {
  await service?.shutdown();
  await tdb?.drop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("gatehouse clients apply over the AdminService", () => {
  it("creates the listed clients: a generated secret printed once, a file-named one taken from the environment", {
    timeout: 60_000,
  }, async () => {
    const r = await apply(await file("base.yaml", BASE));
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain("created orders");
    expect(r.stdout).toContain("created billing\n  secret: from $BILLING_SECRET");
    const printed = /client secret of orders: (gths_\S+)/.exec(r.stdout)?.[1];
    expect(printed).toBeDefined();
    expect(r.stdout).not.toContain(SECRET_A);
    expect(r.stdout).not.toContain("client secret of billing");
    const orders = await row("orders");
    expect(orders).toMatchObject({ name: "Orders", roles: ["issuer"], allowedAudiences: ["api://orders"] });
    expect(await verifyClientSecret(printed!, orders.secretHash!)).toBe(true);
    const billing = await row("billing");
    expect(await verifyClientSecret(SECRET_A, billing.secretHash!)).toBe(true);
    // The generated secret CreateClient made is replaced with no overlap: nobody ever had it.
    expect(billing.previousSecretHash).toBeNull();
    const events = (await audits()).map((e) => `${e.action} ${e.targetId} ${e.actor}`);
    expect(events).toEqual([
      "client.create orders client:root",
      "client.create billing client:root",
      "client.rotate_secret billing client:root",
    ]);
  });

  it("applied again, changes nothing: no write, no audit event", { timeout: 60_000 }, async () => {
    const before = await snapshot();
    const auditsBefore = (await audits()).length;
    const r = await apply(join(dir, "base.yaml"));
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe("unchanged orders\nunchanged billing\nnot in the file root\n  kept: no --prune\n");
    expect(await snapshot()).toBe(before);
    expect((await audits()).length).toBe(auditsBefore);
  });

  it("--dry-run prints each change old → new and writes nothing", { timeout: 60_000 }, async () => {
    const changed = await file(
      "changed.yaml",
      BASE.replace(
        "audiences: [api://orders]",
        "audiences: [api://orders, api://shop]\n    access_token_ttl: 5m",
      ),
    );
    const before = await snapshot();
    const auditsBefore = (await audits()).length;
    const r = await apply(changed, ["--dry-run"], { BILLING_SECRET: SECRET_B });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(
      "would update orders\n  audiences: [api://orders] → [api://orders, api://shop]\n  access_token_ttl: 600 → 300\n",
    );
    expect(r.stdout).toContain("would update billing\n  secret: rotated to $BILLING_SECRET\n");
    expect(await snapshot()).toBe(before);
    expect((await audits()).length).toBe(auditsBefore);
  });

  it("updates only what differs, one audit event per client changed", { timeout: 60_000 }, async () => {
    const auditsBefore = (await audits()).length;
    const r = await apply(join(dir, "changed.yaml"));
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain("updated orders\n  audiences: [api://orders] → [api://orders, api://shop]");
    expect(r.stdout).toContain("unchanged billing");
    expect(await row("orders")).toMatchObject({
      allowedAudiences: ["api://orders", "api://shop"],
      accessTokenTtlSeconds: 300,
    });
    const events = (await audits()).slice(auditsBefore);
    expect(events.map((e) => [e.action, e.targetId, e.details])).toEqual([
      ["client.update", "orders", { fields: ["allowed_audiences", "access_token_ttl"] }],
    ]);
  });

  it("rotates a file-named secret only when the environment's value differs from the stored one", {
    timeout: 60_000,
  }, async () => {
    const r = await apply(join(dir, "changed.yaml"), [], { BILLING_SECRET: SECRET_B });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain("updated billing\n  secret: rotated to $BILLING_SECRET");
    const billing = await row("billing");
    expect(await verifyClientSecret(SECRET_B, billing.secretHash!)).toBe(true);
    // The old one keeps working for the usual overlap while deployments pick up the new one.
    expect(await verifyClientSecret(SECRET_A, billing.previousSecretHash!)).toBe(true);
    const auditsBefore = (await audits()).length;
    const again = await apply(join(dir, "changed.yaml"), [], { BILLING_SECRET: SECRET_B });
    expect(again.stdout).toContain("unchanged billing");
    expect((await audits()).length).toBe(auditsBefore);
  });

  it("removes nothing without --prune; --prune disables the unlisted (never an admin) and a relisted one comes back", {
    timeout: 90_000,
  }, async () => {
    const onlyOrders = await file("orders-only.yaml", BASE.slice(0, BASE.indexOf("  - id: billing")));
    const kept = await apply(onlyOrders);
    expect(kept.code, kept.stderr).toBe(0);
    expect(kept.stdout).toContain("not in the file billing\n  kept: no --prune");
    expect((await row("billing")).disabledAt).toBeNull();

    const pruned = await apply(onlyOrders, ["--prune"]);
    expect(pruned.code, pruned.stderr).toBe(0);
    expect(pruned.stdout).toContain("pruned billing");
    expect(pruned.stdout).toContain("not in the file root\n  kept: an admin is never pruned");
    expect(await row("billing")).toMatchObject({ disabledReason: PRUNE_REASON });
    expect((await row("billing")).disabledAt).not.toBeNull();
    expect((await row("root")).disabledAt).toBeNull();
    const disable = (await audits()).at(-1)!;
    expect([disable.action, disable.targetId, disable.actor]).toEqual([
      "client.disable",
      "billing",
      "client:root",
    ]);

    const prunedAgain = await apply(onlyOrders, ["--prune"]);
    expect(prunedAgain.stdout).toContain("not in the file billing\n  disabled");

    const back = await apply(join(dir, "changed.yaml"), [], { BILLING_SECRET: SECRET_B });
    expect(back.code, back.stderr).toBe(0);
    expect(back.stdout).toContain("updated billing\n  disabled: true → false");
    expect((await row("billing")).disabledAt).toBeNull();
  });

  it("refuses an invalid file with exit 2 and one line naming file, client and key; writes nothing", {
    timeout: 60_000,
  }, async () => {
    const before = await snapshot();
    const cases: [string, RegExp][] = [
      [`${BASE}    trust: {federated_issuer: x}\n`, /: client billing: "trust" is not a known key\n$/],
      [
        BASE.replace("roles: [service]", "roles: service"),
        /: client billing: roles must be a list of strings\n$/,
      ],
      [`${BASE}  - id: orders\n    roles: [issuer]\n`, /: client orders: is listed twice\n$/],
    ];
    const runs = await Promise.all(cases.map(async ([text], i) => apply(await file(`bad-${i}.yaml`, text))));
    runs.forEach((r, i) => {
      expect(r.code).toBe(2);
      expect(r.stdout).toBe("");
      expect(r.stderr).toMatch(/^gatehouse clients: configuration error: \S+bad-\d\.yaml: /);
      expect(r.stderr).toMatch(cases[i]![1]);
      expect(r.stderr.trim().split("\n")).toHaveLength(1);
    });
    const missingEnv = await apply(join(dir, "base.yaml"), [], { BILLING_SECRET: undefined });
    expect(missingEnv.code).toBe(2);
    expect(missingEnv.stderr).toMatch(/client billing: secret_from_env BILLING_SECRET is not set/);
    expect(await snapshot()).toBe(before);
  });

  it("--direct applies on the database with the same rules, audited as the local user", {
    timeout: 60_000,
  }, async () => {
    const r = await apply(
      await file("direct.yaml", `${BASE}  - id: reports\n    roles: [introspector]\n    disabled: true\n`),
      ["--direct"],
      {
        BILLING_SECRET: SECRET_B,
        GATEHOUSE_SERVER: undefined,
        GATEHOUSE_ADMIN_SERVER: undefined,
        GATEHOUSE_CLIENT_ID: undefined,
      },
    );
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain("created reports\n  disabled: true");
    expect(r.stdout).toContain("updated orders\n  audiences: [api://orders, api://shop] → [api://orders]");
    expect((await row("reports")).disabledAt).not.toBeNull();
    const events = (await audits()).filter((e) => e.targetId === "reports");
    expect(events.map((e) => e.action)).toEqual(["client.create", "client.disable"]);
    for (const e of events) expect(e.actor).toMatch(/^system:cli-direct:/);
  });
});

const SHOP = `clients:
  - id: shop-orders
    roles: [service]
    federated_issuer: ${CLUSTER}
    federated_subject: system:serviceaccount:shop:orders
    no_secret: true
`;

describe("trust sources in a clients file", () => {
  it("creates a federated client without a secret: none printed, none stored", {
    timeout: 60_000,
  }, async () => {
    const r = await apply(await file("shop.yaml", SHOP));
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(
      `created shop-orders\n  secret: none (no_secret)\n  federated_issuer: ${CLUSTER}\n  federated_subject: system:serviceaccount:shop:orders`,
    );
    expect(r.stdout).not.toContain("client secret of");
    expect(r.stderr).not.toContain("Store the secrets");
    const created = await row("shop-orders");
    expect(created).toMatchObject({
      secretHash: null,
      federatedIssuer: CLUSTER,
      federatedSubject: "system:serviceaccount:shop:orders",
    });
    const [event] = (await audits()).filter((e) => e.targetId === "shop-orders");
    expect(event).toMatchObject({ action: "client.create", details: { has_secret: false } });
  });

  it("applied again, changes nothing: no write, no audit event", { timeout: 60_000 }, async () => {
    const before = await snapshot();
    const auditCount = (await audits()).length;
    const r = await apply(join(dir, "shop.yaml"));
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain("unchanged shop-orders");
    expect(await snapshot()).toBe(before);
    expect(await audits()).toHaveLength(auditCount);
  });

  it("a changed federated_subject: --dry-run shows it and writes nothing; apply updates it, audited", {
    timeout: 60_000,
  }, async () => {
    const path = await file("shop-moved.yaml", SHOP.replace("shop:orders", "shop:orders-v2"));
    const before = await snapshot();
    const auditCount = (await audits()).length;
    const dry = await apply(path, ["--dry-run"]);
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toContain(
      "would update shop-orders\n  federated_subject: system:serviceaccount:shop:orders → system:serviceaccount:shop:orders-v2",
    );
    expect(await snapshot()).toBe(before);
    const r = await apply(path);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain("updated shop-orders\n  federated_subject:");
    expect((await row("shop-orders")).federatedSubject).toBe("system:serviceaccount:shop:orders-v2");
    const events = (await audits()).slice(auditCount);
    expect(events.map((e) => `${e.action} ${e.targetId}`)).toEqual(["client.update shop-orders"]);
    expect(events[0]!.details).toMatchObject({ fields: ["federated_subject"] });
    // no_secret on a client that has a secret: said, since no apply takes a secret away.
    const secretful = await apply(
      await file(
        "orders-no-secret.yaml",
        `clients:\n  - id: orders\n    roles: [issuer]\n    federated_issuer: ${CLUSTER}\n    federated_subject: system:serviceaccount:shop:legacy\n    no_secret: true\n`,
      ),
      ["--dry-run"],
    );
    expect(secretful.code, secretful.stderr).toBe(0);
    expect(secretful.stdout).toMatch(
      /would update orders\n( {2}.*\n)* {2}secret: kept \(no_secret applies only when a client is created\)/,
    );
  });

  it("compares a JWKS canonically: one registered with other spacing and key order is unchanged", {
    timeout: 60_000,
  }, async () => {
    const { publicKey } = await generateKeyPair("ES256");
    const jwk = { ...(await exportJWK(publicKey)), kid: "signer-1" };
    const members = Object.entries(jwk)
      .map(([k, v]) => `${k}: "${v}"`)
      .join(", ");
    const path = await file(
      "signer.yaml",
      `clients:\n  - id: signer\n    roles: [service]\n    no_secret: true\n    jwks:\n      keys:\n        - {${members}}\n`,
    );
    const created = await apply(path);
    expect(created.code, created.stderr).toBe(0);
    expect(created.stdout).toMatch(
      /created signer\n {2}secret: none \(no_secret\)\n {2}jwks: \[signer-1\] sha256:/,
    );
    // As a hand-written CreateClient would have stored it.
    const reordered = Object.fromEntries(Object.entries(jwk).reverse());
    await tdb.db.prisma.client.update({
      where: { id: "signer" },
      data: { jwks: JSON.stringify({ keys: [reordered] }, null, 2) },
    });
    const auditCount = (await audits()).length;
    const again = await apply(path);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toContain("unchanged signer");
    const direct = await apply(path, ["--direct"]);
    expect(direct.code, direct.stderr).toBe(0);
    expect(direct.stdout).toContain("unchanged signer");
    expect(await audits()).toHaveLength(auditCount);
  });

  it("--direct and GATEHOUSE_CLIENTS_FILE check federated_issuer against the applier's trusted issuers", {
    timeout: 90_000,
  }, async () => {
    const trusted = JSON.stringify([{ issuer: CLUSTER }]);
    const cart = SHOP.replaceAll("shop-orders", "shop-cart").replace("shop:orders", "shop:cart");
    const direct = await apply(await file("cart.yaml", cart), ["--direct"], {
      GATEHOUSE_TRUSTED_ISSUERS: trusted,
    });
    expect(direct.code, direct.stderr).toBe(0);
    expect(direct.stdout).toContain("created shop-cart\n  secret: none (no_secret)");
    expect((await row("shop-cart")).federatedSubject).toBe("system:serviceaccount:shop:cart");
    const queue = SHOP.replaceAll("shop-orders", "shop-queue").replace("shop:orders", "shop:queue");
    const replica = await startTokenService({
      settings: testServiceSettings({
        databasePoolSize: 2,
        clientsFile: await file("queue.yaml", queue),
        masterKey,
        trustedIssuers: [{ issuer: CLUSTER }],
      }),
      database: { kind: "postgres", url: tdb.url },
      logger: silent,
    });
    await replica.shutdown();
    expect(await row("shop-queue")).toMatchObject({ secretHash: null, federatedIssuer: CLUSTER });
  });

  it("refuses invalid trust with exit 2 and one line, writing nothing: over RPC and --direct", {
    timeout: 60_000,
  }, async () => {
    const before = await snapshot();
    const direct = { GATEHOUSE_TRUSTED_ISSUERS: JSON.stringify([{ issuer: CLUSTER }]) };
    const cases: [string, string[], RegExp][] = [
      [
        `${BASE}${SHOP.replace("clients:\n", "").replace(CLUSTER, "https://evil.test")}`,
        ["--direct"],
        /: client shop-orders: federated_issuer is not one of this server's trusted issuers/,
      ],
      [
        `${BASE}  - id: leaky\n    roles: [service]\n    jwks: {keys: [{kty: EC, crv: P-256, x: a, y: b, d: c}]}\n`,
        [],
        /: client leaky: jwks holds private key material \(d\): register public keys only\n$/,
      ],
      [
        `${BASE}  - id: leaky\n    roles: [service]\n    jwks: {keys: [{kty: EC, crv: P-256, x: a, y: b, d: c}]}\n`,
        ["--direct"],
        /: client leaky: jwks holds private key material \(d\)/,
      ],
      [
        `${BASE}  - id: broken\n    roles: [service]\n    jwks: {keys: [{kty: EC, crv: P-256, kid: bad, x: AAAA, y: AAAA}]}\n`,
        ["--direct"],
        /: client broken: jwks key bad is not usable: /,
      ],
      [
        SHOP.replace("no_secret: true", "no_secret: true\n    secret_from_env: BILLING_SECRET"),
        [],
        /: client shop-orders: no_secret and secret_from_env cannot both be set/,
      ],
    ];
    const runs = await Promise.all(
      cases.map(async ([text, flags], i) =>
        apply(await file(`bad-trust-${i}.yaml`, text), flags, flags.length > 0 ? direct : {}),
      ),
    );
    runs.forEach((r, i) => {
      expect(r.code, r.stderr).toBe(2);
      expect(r.stdout).toBe("");
      expect(r.stderr).toMatch(/^gatehouse clients: configuration error: \S+bad-trust-\d\.yaml: /);
      expect(r.stderr).toMatch(cases[i]![2]);
      expect(r.stderr.trim().split("\n")).toHaveLength(1);
    });
    expect(await snapshot()).toBe(before);
  });
});

describe("GATEHOUSE_CLIENTS_FILE at token-service start", () => {
  it("replicas starting together apply it once, as system:clients-file, and start", {
    timeout: 90_000,
  }, async () => {
    const path = await file(
      "start.yaml",
      `${BASE.replace("[invoices.read]", "[invoices.read, invoices.write]")}  - id: search\n    roles: [issuer]\n    secret_from_env: SEARCH_SECRET\n`,
    );
    process.env.SEARCH_SECRET = SECRET_A;
    process.env.BILLING_SECRET = SECRET_B;
    const auditsBefore = (await audits()).length;
    const replicas = await Promise.all(
      [1, 2, 3].map(() =>
        startTokenService({
          settings: testServiceSettings({ databasePoolSize: 4, clientsFile: path, masterKey }),
          database: { kind: "postgres", url: tdb.url },
          logger: silent,
        }),
      ),
    );
    await Promise.all(replicas.map((r) => r.shutdown()));
    const events = (await audits()).slice(auditsBefore);
    expect(events.map((e) => `${e.action} ${e.targetId} ${e.actor}`)).toEqual([
      "client.update billing system:clients-file",
      "client.create search system:clients-file",
    ]);
    expect(await verifyClientSecret(SECRET_A, (await row("search")).secretHash!)).toBe(true);
  });

  it("an invalid file stops the start with one line", { timeout: 60_000 }, async () => {
    const path = await file("start-bad.yaml", `${BASE}    trust: {}\n`);
    const start = startTokenService({
      settings: testServiceSettings({ databasePoolSize: 2, clientsFile: path, masterKey }),
      database: { kind: "postgres", url: tdb.url },
      logger: silent,
    });
    await expect(start).rejects.toBeInstanceOf(ClientsFileError);
    await expect(start).rejects.toThrow(/start-bad\.yaml: client billing: "trust" is not a known key$/);
  });

  it("`gatehouse serve` with an invalid file exits 2 with one line and never listens", {
    timeout: 60_000,
  }, async () => {
    const r = await gatehouse(["serve"], {
      GATEHOUSE_ISSUER: "https://auth.test",
      GATEHOUSE_MASTER_KEY: masterKey.toString("base64"),
      GATEHOUSE_LISTEN: "127.0.0.1:0",
      GATEHOUSE_HTTP_LISTEN: "127.0.0.1:0",
      GATEHOUSE_ADMIN_LISTEN: "127.0.0.1:0",
      GATEHOUSE_LOG_LEVEL: "silent",
      GATEHOUSE_REVOCATION: "none",
      GATEHOUSE_CLIENTS_FILE: join(dir, "start-bad.yaml"),
    });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(
      /^gatehouse serve: configuration error: \S+start-bad\.yaml: client billing: "trust" is not a known key\n$/,
    );
  });
});
