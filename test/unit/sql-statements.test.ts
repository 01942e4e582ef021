import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { revokeSessions } from "../../services/token/sql/revoke-sessions.ts";
import { type SqlStatement, sql } from "../../services/token/sql/statement.ts";
import { queryConfig } from "../../services/token/store/sql-executor.ts";

/**
 * Every statement in services/token/sql/ names its tables with the configured schema: behind a
 * transaction pooler there is no connect-time search_path to fall back on, so one unqualified table
 * would hit `public` (or fail) in production while every direct-connection test passed.
 */
const SQL_DIR = join(import.meta.dirname, "../../services/token/sql");
/** Every table, read from prisma/schema.prisma (each model's `@@map`), not restated here. */
const TABLES = [
  ...readFileSync(join(import.meta.dirname, "../../prisma/schema.prisma"), "utf8").matchAll(
    /^model \w+ \{$[\s\S]*?@@map\("(\w+)"\)[\s\S]*?^\}$/gm,
  ),
].map((m) => m[1]!);
const SCHEMA = "t_probe_schema";

const isStatement = (v: unknown): v is SqlStatement<unknown> =>
  typeof v === "object" && v !== null && typeof (v as { text?: unknown }).text === "function";

async function allStatements(): Promise<[string, SqlStatement<unknown>][]> {
  const out: [string, SqlStatement<unknown>][] = [];
  for (const file of readdirSync(SQL_DIR).filter((f) => f.endsWith(".ts"))) {
    const mod = (await import(join(SQL_DIR, file))) as Record<string, unknown>;
    for (const [name, value] of Object.entries(mod))
      if (isStatement(value)) out.push([`${file}:${name}`, value]);
  }
  // Built per variant rather than exported one by one.
  for (const selector of ["session_id", "refresh_token", "subject"] as const) {
    for (const accessOnly of [false, true]) {
      out.push([`revoke-sessions.ts:${selector}:${accessOnly}`, revokeSessions(selector, accessOnly)]);
    }
  }
  return out;
}

/** Table references (after FROM, JOIN, INTO, UPDATE, or as a regclass literal) not qualified with SCHEMA. */
function unqualified(text: string): string[] {
  const names = TABLES.join("|");
  const ref = new RegExp(
    `\\b(?:FROM|JOIN|INTO|UPDATE)\\s+("?[\\w]+"?\\.)?(${names})\\b|'("?[\\w]+"?\\.)?(${names})'::regclass`,
    "gi",
  );
  const found: string[] = [];
  for (const m of text.matchAll(ref)) {
    const qualifier = m[1] ?? m[3];
    if (qualifier !== `"${SCHEMA}".`) found.push(m[0]);
  }
  return found;
}

describe("SQL statements", () => {
  it("name every table with the configured schema, and every lock key depends on it", async () => {
    const statements = await allStatements();
    expect(statements.length).toBeGreaterThan(30);
    const names = new Set<string>();
    for (const [where, statement] of statements) {
      const text = statement.text(SCHEMA);
      expect(unqualified(text), where).toEqual([]);
      expect(text, where).not.toMatch(/current_schema\(\)|search_path/);
      if (/advisory/.test(text)) expect(text, where).toContain(SCHEMA);
      names.add(statement.name);
    }
    // Named statements share one namespace per connection: two texts under one name would collide.
    expect(names.size).toBe(statements.length);
  });

  it("the unqualified-table check itself catches a bare table", () => {
    expect(unqualified('SELECT 1 FROM sessions s JOIN "other".clients c ON true')).toEqual([
      "FROM sessions",
      'JOIN "other".clients',
    ]);
  });

  it("builds a statement once per schema, and each schema gets its own text", () => {
    let builds = 0;
    const s = sql<never>("test_built_once", (t) => {
      builds++;
      return `SELECT * FROM ${t.sessions}`;
    });
    expect(s.text("a_schema")).toBe('SELECT * FROM "a_schema".sessions');
    expect(s.text("a_schema")).toBe('SELECT * FROM "a_schema".sessions');
    expect(s.text("b_schema")).toBe('SELECT * FROM "b_schema".sessions');
    expect(builds).toBe(2);
  });

  it("refuses a schema name that is not a plain identifier", () => {
    const s = sql<never>("test_bad_schema", (t) => `SELECT * FROM ${t.sessions}`);
    expect(() => s.text('x"; DROP TABLE sessions; --')).toThrow(/invalid Postgres schema name/);
  });

  it("sends the statement by name only when the scope allows named statements", () => {
    const s = sql<never>("test_named", (t) => `SELECT * FROM ${t.clients} WHERE id = $1`);
    expect(queryConfig(s, { schema: "x", preparedStatements: true }, ["a"])).toEqual({
      name: "test_named",
      text: 'SELECT * FROM "x".clients WHERE id = $1',
      values: ["a"],
    });
    expect(queryConfig(s, { schema: "x", preparedStatements: false }, ["a"])).toEqual({
      text: 'SELECT * FROM "x".clients WHERE id = $1',
      values: ["a"],
    });
  });
});
