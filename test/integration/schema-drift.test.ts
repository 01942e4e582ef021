import { cp, mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createMigration,
  diffMigrationsAgainstSchema,
  MIGRATIONS_DIR,
  SCHEMA_PATH,
  type ShadowTarget,
} from "../../services/shared/database/index.ts";
import { TEST_DATABASE_URL } from "../support/services.ts";

/**
 * prisma/schema.prisma and prisma/migrations must describe the same database. The schema engine
 * replays the committed migrations in a throwaway schema of the test database and diffs the result
 * against the datamodel. No exceptions are needed: the partial unique index on signing_keys and the
 * partial outbox index are expressed in the schema (`partialIndexes` preview feature), so they are
 * part of the comparison like every other index.
 *
 * When this fails after a schema edit: `npm run migration:new -- <name>`, review, commit the folder.
 */
const shadow: ShadowTarget = { kind: "postgres", url: TEST_DATABASE_URL };

let datamodel: string;
let withExtraColumn: string;
let workDir: string | undefined;
let admin: pg.Client;
let shadowsBefore: string[];

async function shadowSchemas(): Promise<string[]> {
  const { rows } = await admin.query<{ nspname: string }>(
    "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'prisma\\_shadow\\_%'",
  );
  return rows.map((r) => r.nspname);
}

beforeAll(async () => {
  admin = new pg.Client({ connectionString: TEST_DATABASE_URL });
  await admin.connect();
  shadowsBefore = await shadowSchemas();
  datamodel = await readFile(SCHEMA_PATH, "utf8");
  withExtraColumn = datamodel.replace(
    /^model Client \{\n/m,
    'model Client {\n  driftProbe String? @map("drift_probe")\n',
  );
});

afterAll(async () => {
  await admin?.end();
  if (workDir) await rm(workDir, { recursive: true, force: true });
});

describe("schema drift", () => {
  it("finds nothing to change between the committed migrations and prisma/schema.prisma", async () => {
    const sql = await diffMigrationsAgainstSchema({ shadow });
    expect(sql).toBe("");
  });

  it("reports the SQL for a column the migrations lack (so the check above can fail)", async () => {
    expect(withExtraColumn).not.toBe(datamodel);
    const sql = await diffMigrationsAgainstSchema({ shadow, datamodel: withExtraColumn });
    expect(sql).toMatch(/ALTER TABLE "clients" ADD COLUMN\s+"drift_probe" TEXT;/);
    // Only that: everything else, partial indexes included, round-trips.
    expect(sql).not.toMatch(/CREATE (UNIQUE )?INDEX|DROP INDEX|CREATE TABLE/);
  });

  it("drops its shadow schemas afterwards", async () => {
    expect(await shadowSchemas()).toEqual(shadowsBefore);
  });
});

describe("createMigration()", () => {
  beforeAll(async () => {
    workDir = await mkdtemp(join(tmpdir(), "gatehouse-migrations-"));
    await cp(MIGRATIONS_DIR, join(workDir, "migrations"), { recursive: true });
  });

  it("writes nothing when the schema matches the migrations", async () => {
    const migrationsDir = join(workDir!, "migrations");
    expect(await createMigration("noop", { shadow, migrationsDir })).toBeNull();
    expect((await readdir(migrationsDir)).filter((n) => n.endsWith("_noop"))).toEqual([]);
  });

  it("writes <timestamp>_<name>/migration.sql with the diff", async () => {
    const migrationsDir = join(workDir!, "migrations");
    const created = await createMigration("add_drift_probe", {
      shadow,
      migrationsDir,
      datamodel: withExtraColumn,
    });
    expect(created?.name).toMatch(/^\d{14}_add_drift_probe$/);
    const sql = await readFile(created!.path, "utf8");
    expect(sql).toContain('ALTER TABLE "clients" ADD COLUMN     "drift_probe" TEXT;');
    // With the new migration in place, the modified datamodel is in sync again.
    expect(await diffMigrationsAgainstSchema({ shadow, migrationsDir, datamodel: withExtraColumn })).toBe("");
  });

  it("rejects names that would make odd folder names", async () => {
    await expect(createMigration("Add Column", { shadow })).rejects.toThrow(/lower-case/);
  });
});
