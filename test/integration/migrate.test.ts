import { randomBytes } from "node:crypto";
import { readdirSync } from "node:fs";
import { cp, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PGlite } from "@electric-sql/pglite";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createDatabase,
  MIGRATION_LOCK_KEY,
  MIGRATIONS_DIR,
  type MigrationTarget,
  migrate,
  migrationStatus,
  openPGlite,
  pendingMigrations,
} from "../../services/shared/database/index.ts";
import { dropSchema, type TestDatabase, testSchemaName, useTestDatabase } from "../support/database.ts";
import { TEST_DATABASE_URL } from "../support/services.ts";

const url = TEST_DATABASE_URL;

/** Migration folders as committed, read straight from disk (not through the code under test). */
const committed = readdirSync(MIGRATIONS_DIR, { withFileTypes: true })
  .filter((e) => e.isDirectory())
  .map((e) => e.name)
  .sort();

const TABLES = [
  "audit_events",
  "client_assertion_jtis",
  "clients",
  "refresh_keys",
  "refresh_tokens",
  "revocation_outbox",
  "revoked_access_tokens",
  "sessions",
  "signing_keys",
  "subject_revocations",
];

const schemas: string[] = [];
let admin: pg.Client;

function freshSchema(label: string): string {
  const schema = testSchemaName(`migrate_${label}`);
  schemas.push(schema);
  return schema;
}

async function tablesIn(schema: string): Promise<string[]> {
  const { rows } = await admin.query<{ table_name: string }>(
    "SELECT table_name FROM information_schema.tables WHERE table_schema = $1 ORDER BY table_name",
    [schema],
  );
  return rows.map((r) => r.table_name);
}

async function recordedMigrations(schema: string): Promise<{ migration_name: string; finished: boolean }[]> {
  const { rows } = await admin.query<{ migration_name: string; finished: boolean }>(
    `SELECT migration_name, finished_at IS NOT NULL AS finished FROM "${schema}"._prisma_migrations
     ORDER BY migration_name`,
  );
  return rows;
}

beforeAll(async () => {
  admin = new pg.Client({ connectionString: url });
  await admin.connect();
});

afterAll(async () => {
  await admin?.end();
  for (const schema of schemas) await dropSchema(schema);
});

describe("migrate() on Postgres", () => {
  it("has something to apply", () => {
    expect(committed.length).toBeGreaterThan(0);
    expect(committed[0]).toMatch(/^\d{14}_init$/);
  });

  it("applies the committed migrations to a fresh schema once, then applies nothing", async () => {
    const schema = freshSchema("fresh");
    const target: MigrationTarget = { kind: "postgres", url, schema };

    const before = await migrationStatus(target);
    expect(before.pending).toEqual(committed);
    expect(before.current).toBe(false);

    const first = await migrate(target);
    expect(first.applied).toEqual(committed);
    expect(await tablesIn(schema)).toEqual(["_prisma_migrations", ...TABLES]);
    expect(await recordedMigrations(schema)).toEqual(
      committed.map((migration_name) => ({ migration_name, finished: true })),
    );

    const second = await migrate(target);
    expect(second.applied).toEqual([]);
    expect(await recordedMigrations(schema)).toHaveLength(committed.length);

    const after = await migrationStatus(target);
    expect(after).toMatchObject({ applied: committed, pending: [], failed: [], edited: [], current: true });
    expect(await pendingMigrations(target)).toEqual([]);
  });

  it("takes the schema from the URL's ?schema= parameter and creates it", async () => {
    const schema = freshSchema("urlparam");
    const withSchema = new URL(url);
    withSchema.searchParams.set("schema", schema);
    await migrate({ kind: "postgres", url: withSchema.toString() });
    expect(await tablesIn(schema)).toContain("clients");
  });

  it("lets two concurrent migrate() calls on one fresh schema both succeed, recording each migration once", async () => {
    const schema = freshSchema("race");
    const target: MigrationTarget = { kind: "postgres", url, schema };
    const results = await Promise.all([migrate(target), migrate(target)]);
    // Exactly one of them applied the migrations; the other waited for the lock and found nothing to do.
    expect(results.flatMap((r) => r.applied).sort()).toEqual(committed);
    expect(results.filter((r) => r.applied.length === 0)).toHaveLength(1);
    expect(await recordedMigrations(schema)).toEqual(
      committed.map((migration_name) => ({ migration_name, finished: true })),
    );
    expect(await tablesIn(schema)).toEqual(["_prisma_migrations", ...TABLES]);
  });

  it("waits while another session holds the migration lock", async () => {
    const schema = freshSchema("locked");
    await admin.query("SELECT pg_advisory_lock($1::bigint)", [MIGRATION_LOCK_KEY.toString()]);
    const logs: string[] = [];
    let settled = false;
    const running = migrate({ kind: "postgres", url, schema }, { log: (m) => logs.push(m) }).finally(() => {
      settled = true;
    });
    try {
      await new Promise((resolve) => setTimeout(resolve, 400));
      expect(settled).toBe(false);
      expect(logs).toContain("waiting for the migration lock (another process is migrating)");
      expect(await tablesIn(schema)).toEqual([]);
    } finally {
      await admin.query("SELECT pg_advisory_unlock($1::bigint)", [MIGRATION_LOCK_KEY.toString()]);
    }
    expect((await running).applied).toEqual(committed);
  });

  it("gives up after lockTimeoutMs when the lock stays taken", async () => {
    const schema = freshSchema("timeout");
    await admin.query("SELECT pg_advisory_lock($1::bigint)", [MIGRATION_LOCK_KEY.toString()]);
    try {
      await expect(migrate({ kind: "postgres", url, schema }, { lockTimeoutMs: 200 })).rejects.toThrow(
        /gave up after 200 ms waiting for the migration lock/,
      );
    } finally {
      await admin.query("SELECT pg_advisory_unlock($1::bigint)", [MIGRATION_LOCK_KEY.toString()]);
    }
    expect(await tablesIn(schema)).toEqual([]);
  });

  it("applies a failing migration not at all, reports it as failed and refuses to go on", async () => {
    const schema = freshSchema("broken");
    const target: MigrationTarget = { kind: "postgres", url, schema };
    const migrationsDir = await mkdtemp(join(tmpdir(), "gatehouse-migrations-"));
    try {
      await cp(MIGRATIONS_DIR, migrationsDir, { recursive: true });
      await mkdir(join(migrationsDir, "20991231000000_broken"));
      await writeFile(
        join(migrationsDir, "20991231000000_broken", "migration.sql"),
        'CREATE TABLE "half_done" ("id" TEXT);\nALTER TABLE "no_such_table" ADD COLUMN "x" TEXT;\n',
      );
      await expect(migrate(target, { migrationsDir })).rejects.toThrow(/no_such_table/);
      // The script ran as one transaction: the statement before the failing one left nothing behind.
      expect(await tablesIn(schema)).not.toContain("half_done");
      expect(await migrationStatus(target, { migrationsDir })).toMatchObject({
        applied: committed,
        pending: ["20991231000000_broken"],
        failed: ["20991231000000_broken"],
        current: false,
      });
      await expect(migrate(target, { migrationsDir })).rejects.toThrow(/failed migrations/);
    } finally {
      await rm(migrationsDir, { recursive: true, force: true });
    }
  });
});

describe("upgrading to per-client tenants", () => {
  const TENANTS = "20261206002749_refresh_keys_and_client_tenants";

  it("allows each existing client exactly the tenants its live sessions carry", async () => {
    const schema = freshSchema("tenants");
    const target: MigrationTarget = { kind: "postgres", url, schema };
    const before = await mkdtemp(join(tmpdir(), "gatehouse-migrations-"));
    try {
      for (const name of committed.filter((m) => m < TENANTS)) {
        await cp(join(MIGRATIONS_DIR, name), join(before, name), { recursive: true });
      }
      await migrate(target, { migrationsDir: before });
      await admin.query(
        `INSERT INTO "${schema}".clients (id, name, secret_hash)
         VALUES ('multi', 'multi', 'x'), ('plain', 'plain', 'x'), ('gone', 'gone', 'x')`,
      );
      const session = (client: string, tenant: string | null, revoked: boolean, expiresIn: string) =>
        admin.query(
          `INSERT INTO "${schema}".sessions (subject, client_id, tenant, idle_expires_at, expires_at, revoked_at)
           VALUES ('alice', $1, $2, now() + interval '1 day', now() + $3::interval, $4)`,
          [client, tenant, expiresIn, revoked ? new Date() : null],
        );
      await session("multi", "globex", false, "1 day");
      await session("multi", "acme", false, "1 day");
      await session("multi", "acme", false, "1 day");
      await session("multi", "initech", true, "1 day"); // revoked: not carried over
      await session("multi", "umbrella", false, "-1 day"); // expired: not carried over
      await session("plain", null, false, "1 day");
      await session("gone", "hooli", true, "1 day");

      await migrate(target);
      const { rows } = await admin.query<{ id: string; allowed_tenants: string[] }>(
        `SELECT id, allowed_tenants FROM "${schema}".clients ORDER BY id`,
      );
      expect(rows).toEqual([
        { id: "gone", allowed_tenants: [] },
        { id: "multi", allowed_tenants: ["acme", "globex"] },
        { id: "plain", allowed_tenants: [] },
      ]);
    } finally {
      await rm(before, { recursive: true, force: true });
    }
  });
});

describe("the generated client on a migrated Postgres schema", () => {
  let tdb: TestDatabase;
  beforeAll(async () => {
    tdb = await useTestDatabase("migrate_client");
    schemas.push(tdb.schema);
  });
  afterAll(() => tdb?.drop());

  it("gives a migrated schema of its own, with a self-contained URL", async () => {
    expect(tdb.schema).toMatch(/^t_migrate_client_[0-9a-f]{10}$/);
    expect(new URL(tdb.url).searchParams.get("schema")).toBe(tdb.schema);
    expect(await migrationStatus(tdb.db)).toMatchObject({ pending: [], current: true });
  });

  it("creates and reads a Client row in its schema, and raw SQL on the shared pool sees it", async () => {
    const created = await tdb.db.prisma.client.create({
      data: {
        id: "svc-orders",
        name: "Orders",
        secretHash: "scrypt$N=16384,r=8,p=1$c2FsdA$aGFzaA",
        roles: ["issuer"],
      },
    });
    expect(created).toMatchObject({ id: "svc-orders", accessTokenTtlSeconds: 600, allowedScopes: [] });
    const read = await tdb.db.prisma.client.findUnique({ where: { id: "svc-orders" } });
    expect(read?.roles).toEqual(["issuer"]);

    const raw = await tdb.sql.query<{ id: string; refresh_grace_seconds: number }>(
      "SELECT id, refresh_grace_seconds FROM clients",
    );
    expect(raw.rows).toEqual([{ id: "svc-orders", refresh_grace_seconds: 10 }]);
    const inSchema = await admin.query(`SELECT id FROM "${tdb.schema}".clients`);
    expect(inSchema.rowCount).toBe(1);
  });

  it("lets at most one signing key be active (partial unique index)", async () => {
    const key = (kid: string, status: "staged" | "active") => ({
      kid,
      algorithm: "EdDSA",
      status,
      publicJwk: { kty: "OKP", crv: "Ed25519", x: kid },
      privateKeyEnc: new Uint8Array(32),
    });
    await tdb.db.prisma.signingKey.create({ data: key("k1", "active") });
    await tdb.db.prisma.signingKey.create({ data: key("k2", "staged") });

    await expect(tdb.db.prisma.signingKey.create({ data: key("k3", "active") })).rejects.toMatchObject({
      code: "P2002",
    });
    await expect(
      tdb.sql.query("UPDATE signing_keys SET status = 'active' WHERE kid = 'k2'"),
    ).rejects.toMatchObject({ code: "23505", constraint: "signing_keys_one_active" });

    // Rotation: retire the active key, then activate the staged one, in one transaction.
    await tdb.db.prisma.$transaction([
      tdb.db.prisma.signingKey.update({ where: { kid: "k1" }, data: { status: "retiring" } }),
      tdb.db.prisma.signingKey.update({ where: { kid: "k2" }, data: { status: "active" } }),
    ]);
    const active = await tdb.db.prisma.signingKey.findMany({ where: { status: "active" } });
    expect(active.map((k) => k.kid)).toEqual(["k2"]);
  });
});

describe("migrate() on PGlite", () => {
  let memory: PGlite;
  let pristine: Blob;
  let dataDir: string | undefined;
  beforeAll(async () => {
    // PGlite's initdb costs ~3 s of CPU: run it once, and seed the on-disk test's folder from a dump
    // of the still-empty cluster.
    memory = await openPGlite();
    pristine = await memory.dumpDataDir("none");
  });
  afterAll(async () => {
    await memory?.close();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  it("migrates an in-memory database idempotently, and the generated client works on it", async () => {
    const target: MigrationTarget = { kind: "pglite", db: memory };
    expect(await pendingMigrations(target)).toEqual(committed);

    expect((await migrate(target)).applied).toEqual(committed);
    const { rows } = await memory.query<{ table_name: string }>(
      "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY table_name",
    );
    expect(rows.map((r) => r.table_name)).toEqual(["_prisma_migrations", ...TABLES]);
    expect((await migrate(target)).applied).toEqual([]);
    expect(await pendingMigrations(target)).toEqual([]);

    const db = await createDatabase(target);
    try {
      await db.prisma.client.create({ data: { id: "svc-mem", name: "Memory", secretHash: "x" } });
      expect(await db.prisma.client.findUnique({ where: { id: "svc-mem" } })).toMatchObject({
        name: "Memory",
        refreshIdleTtlSeconds: 1209600,
      });
    } finally {
      await db.close();
    }
    expect(memory.closed).toBe(false); // a PGlite passed in stays the caller's
  });

  it("migrates an on-disk database that survives a restart", async () => {
    dataDir = await mkdtemp(join(tmpdir(), "gatehouse-pglite-"));
    const seeded = new PGlite({ dataDir: join(dataDir, "db"), loadDataDir: pristine });
    await seeded.close();
    const target: MigrationTarget = { kind: "pglite", dataDir: join(dataDir, "db") };

    expect((await migrate(target)).applied).toEqual(committed);
    // Each call below reopens the folder: the schema and the migration record were persisted.
    expect(await migrationStatus(target)).toMatchObject({ pending: [], current: true });
    expect((await migrate(target)).applied).toEqual([]);

    const db = await createDatabase(target);
    try {
      await db.prisma.client.create({ data: { id: "svc-disk", name: "Disk", secretHash: "x" } });
      expect((await db.prisma.client.findMany()).map((c) => c.id)).toEqual(["svc-disk"]);
    } finally {
      await db.close();
    }
  });
});

describe("migrate() input checks", () => {
  it("refuses a schema name that is not a plain identifier", async () => {
    await expect(
      migrate({
        kind: "postgres",
        url,
        schema: `x"; DROP SCHEMA public; --${randomBytes(2).toString("hex")}`,
      }),
    ).rejects.toThrow(/invalid Postgres schema name/);
  });
});
