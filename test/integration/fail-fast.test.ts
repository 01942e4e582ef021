import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { dropSchema, type TestDatabase, testSchemaName, useTestDatabase } from "../support/database.ts";
import { freePort } from "../support/ports.ts";
import { useTestRedis } from "../support/redis.ts";
import { TEST_DATABASE_URL, TEST_REDIS_URL } from "../support/services.ts";
import { startTcpProxy, type TcpProxy } from "../support/tcp-proxy.ts";

/**
 * Issue 20, "fail fast": every command that cannot start exits promptly with the documented code
 * (2: a setting must change; 1: something outside must), one line on stderr naming the setting and
 * the fix, no stack trace or stray library output, and nothing left behind: no process in its
 * process group, no Postgres backend under its application_name, no connection through the Redis
 * proxy it was given. Every command is a real `node bin/gatehouse.mjs` process against the real
 * Postgres and Redis, with a deadline on its exit (a sidecar with REDIS_URL used to hang forever).
 */
const BIN = fileURLToPath(new URL("../../bin/gatehouse.mjs", import.meta.url));
const EXIT_DEADLINE_MS = 25_000;
const ISSUER = "https://auth.failfast.test";
const MASTER_KEY = randomBytes(32).toString("base64");

interface Exit {
  code: number | null;
  stdout: string;
  stderr: string;
  /** The deadline passed and the process group was killed. */
  hung: boolean;
  /** Some process of its group was still alive after it exited. */
  leftover: boolean;
  ms: number;
}

let migrated: TestDatabase;
let behind: TestDatabase;
const emptySchema = testSchemaName("fail_fast_empty");
let cleanupRedis: () => Promise<void>;
let stream: string;
let takenPort: number;
let taken: net.Server;
let admin: pg.Client;
/** Policy files and the dev data folder; removed afterwards. */
const scratch = mkdtempSync(join(tmpdir(), "gatehouse-failfast-"));

/** A DATABASE_URL for `schema` whose connections carry a name of their own, to find leftovers by. */
function databaseUrl(base: string, schema: string | undefined, appName: string): string {
  const url = new URL(base);
  if (schema !== undefined) url.searchParams.set("schema", schema);
  url.searchParams.set("application_name", appName);
  return url.toString();
}

/**
 * Runs one command to its exit. With `when`, a process that should start: once its output matches,
 * `whileRunning` runs against it and SIGTERM follows.
 */
function run(
  args: string[],
  env: Record<string, string>,
  opts: { when?: RegExp; whileRunning?: () => Promise<void> } = {},
): Promise<Exit> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const child: ChildProcess = spawn(process.execPath, [BIN, ...args], {
      env: {
        PATH: process.env.PATH ?? "",
        HOME: process.env.HOME ?? "",
        GATEHOUSE_LOG_PRETTY: "false",
        GATEHOUSE_LOG_LEVEL: "warn",
        ...env,
      },
      stdio: ["ignore", "pipe", "pipe"],
      // Its own process group, so "nothing left behind" can be checked for the whole group.
      detached: true,
    });
    let stdout = "";
    let stderr = "";
    let hung = false;
    let seen = false;
    child.stdout!.on("data", (d) => {
      stdout += d;
      if (!seen && opts.when?.test(stdout)) {
        seen = true;
        (opts.whileRunning?.() ?? Promise.resolve()).catch(reject).finally(() => child.kill("SIGTERM"));
      }
    });
    child.stderr!.on("data", (d) => {
      stderr += d;
    });
    const deadline = setTimeout(() => {
      hung = true;
      process.kill(-child.pid!, "SIGKILL");
    }, EXIT_DEADLINE_MS);
    child.on("error", reject);
    child.on("close", async (code) => {
      clearTimeout(deadline);
      // A helper the command started (tsx's esbuild service, say) may still be on its way out when the
      // command's pipes close: give the group 2 s to be gone before calling anything left over.
      const groupAlive = () => {
        try {
          process.kill(-child.pid!, 0);
          return true;
        } catch {
          return false;
        }
      };
      const until = performance.now() + 2_000;
      while (groupAlive() && performance.now() < until) await new Promise((r) => setTimeout(r, 50));
      const leftover = groupAlive();
      if (leftover) process.kill(-child.pid!, "SIGKILL");
      resolve({ code, stdout, stderr, hung, leftover, ms: Math.round(performance.now() - started) });
    });
  });
}

/** Postgres backends still open under `appName` (waits a little: a backend notices a closed socket late). */
async function backendsOf(appName: string): Promise<number> {
  let count = 0;
  for (let i = 0; i < 20; i++) {
    const r = await admin.query<{ n: string }>(
      "SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = $1",
      [appName],
    );
    count = Number(r.rows[0]!.n);
    if (count === 0) return 0;
    await new Promise((r) => setTimeout(r, 100));
  }
  return count;
}

/** A Redis proxy of the test's own (so connections counted are this command's), stopped after `use`. */
async function withRedisProxy<T>(use: (proxy: TcpProxy) => Promise<T>): Promise<T> {
  const target = new URL(TEST_REDIS_URL);
  const proxy = await startTcpProxy({ host: target.hostname, port: Number(target.port || 6379) });
  try {
    return await use(proxy);
  } finally {
    await proxy.stop();
  }
}

/** Connections still open through `proxy` (waits a little for sockets to close). */
async function redisConnectionsOpen(proxy: TcpProxy): Promise<number> {
  for (let i = 0; i < 20 && proxy.open > 0; i++) await new Promise((r) => setTimeout(r, 100));
  return proxy.open;
}

/** The common verdict: exit code in time, one line on stderr matching `line`, nothing stray. */
function expectFailFast(exit: Exit, code: 1 | 2, command: string, line: RegExp): void {
  expect(exit.hung, `still running after ${EXIT_DEADLINE_MS} ms; stderr: ${exit.stderr}`).toBe(false);
  expect(exit.leftover).toBe(false);
  expect(exit.code, exit.stderr).toBe(code);
  const lines = exit.stderr.trimEnd().split("\n");
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(new RegExp(`^gatehouse ${command}: `));
  expect(lines[0]).toMatch(line);
  for (const out of [exit.stdout, exit.stderr]) {
    expect(out).not.toMatch(/\n\s+at |"stack":/);
    expect(out).not.toContain("Resolution note");
    expect(out).not.toContain("invocation in");
  }
}

beforeAll(async () => {
  admin = new pg.Client({ connectionString: TEST_DATABASE_URL });
  await admin.connect();
  [migrated, behind] = await Promise.all([useTestDatabase(), useTestDatabase("fail_fast_behind")]);
  // A schema one migration behind this build: the rollout got ahead of its migrations.
  await behind.sql.query(
    "DELETE FROM _prisma_migrations WHERE migration_name = (SELECT max(migration_name) FROM _prisma_migrations)",
  );
  await admin.query(`CREATE SCHEMA "${emptySchema}"`);
  const redis = await useTestRedis("failfast");
  cleanupRedis = redis.cleanup;
  stream = `${redis.prefix}revocations`;
  taken = net.createServer();
  await new Promise<void>((resolve) => taken.listen(0, "127.0.0.1", resolve));
  takenPort = (taken.address() as net.AddressInfo).port;
}, 60_000);

afterAll(async () => {
  await new Promise((resolve) => taken?.close(resolve));
  await cleanupRedis?.();
  await Promise.all([migrated?.drop(), behind?.drop(), dropSchema(emptySchema)]);
  await admin?.end();
  rmSync(scratch, { recursive: true, force: true });
});

describe("gatehouse sidecar", () => {
  const base = () => ({
    GATEHOUSE_ISSUER: ISSUER,
    GATEHOUSE_AUDIENCES: "orders",
    GATEHOUSE_TOKEN_SERVICE_URL: "http://127.0.0.1:9",
    GATEHOUSE_UPSTREAM: "http://127.0.0.1:9",
    GATEHOUSE_PROXY_LISTEN: "127.0.0.1:0",
    GATEHOUSE_CONTROL_LISTEN: "127.0.0.1:0",
    GATEHOUSE_REVOCATION_STREAM: stream,
  });
  const withRedis = (redis: string) => ({ ...base(), REDIS_URL: redis });
  const withoutRedis = () => ({ ...base(), GATEHOUSE_REVOCATION: "none" });
  const typo = () => {
    const file = join(scratch, `failfast-typo-${randomBytes(4).toString("hex")}.yaml`);
    writeFileSync(file, "version: 1\nroutes:\n  - match: { prefix: /api/ }\n");
    return file;
  };
  const missing = () => join(scratch, `failfast-missing-${randomBytes(4).toString("hex")}.yaml`);

  const cases: [string, (redis: string) => Record<string, string>, 1 | 2, RegExp][] = [
    [
      "policy typo, with REDIS_URL",
      (redis) => ({ ...withRedis(redis), GATEHOUSE_POLICY_FILE: typo() }),
      2,
      /configuration error: GATEHOUSE_POLICY_FILE: .*:2:1: routes: unknown key "routes" \(did you mean "rules"\?\)/,
    ],
    [
      "policy typo, without REDIS_URL",
      () => ({ ...withoutRedis(), GATEHOUSE_POLICY_FILE: typo() }),
      2,
      /configuration error: GATEHOUSE_POLICY_FILE: .*unknown key "routes"/,
    ],
    [
      "missing policy file, with REDIS_URL",
      (redis) => ({ ...withRedis(redis), GATEHOUSE_POLICY_FILE: missing() }),
      2,
      /configuration error: GATEHOUSE_POLICY_FILE: .*failfast-missing-\w+\.yaml does not exist: fix the path/,
    ],
    [
      "missing policy file, without REDIS_URL",
      () => ({ ...withoutRedis(), GATEHOUSE_POLICY_FILE: missing() }),
      2,
      /configuration error: GATEHOUSE_POLICY_FILE: .*does not exist/,
    ],
    [
      "proxy port in use, with REDIS_URL",
      (redis) => ({ ...withRedis(redis), GATEHOUSE_PROXY_LISTEN: `127.0.0.1:${takenPort}` }),
      1,
      /GATEHOUSE_PROXY_LISTEN: 127\.0\.0\.1:\d+ is already in use: stop what listens there/,
    ],
    [
      "proxy port in use, without REDIS_URL",
      () => ({ ...withoutRedis(), GATEHOUSE_PROXY_LISTEN: `127.0.0.1:${takenPort}` }),
      1,
      /GATEHOUSE_PROXY_LISTEN: .* is already in use/,
    ],
    [
      "control port in use, with REDIS_URL",
      (redis) => ({ ...withRedis(redis), GATEHOUSE_CONTROL_LISTEN: `127.0.0.1:${takenPort}` }),
      1,
      /GATEHOUSE_CONTROL_LISTEN: .* is already in use/,
    ],
    [
      "no audience anywhere (no policy, no GATEHOUSE_AUDIENCES), with REDIS_URL",
      (redis) => ({ ...withRedis(redis), GATEHOUSE_AUDIENCES: "" }),
      2,
      /configuration error: GATEHOUSE_AUDIENCES: not set and no route policy .* every token would be refused/,
    ],
    [
      "a bad setting",
      (redis) => ({ ...withRedis(redis), GATEHOUSE_FAIL_MODE: "sideways" }),
      2,
      /configuration error: GATEHOUSE_FAIL_MODE: /,
    ],
    [
      "REDIS_SENTINELS beside REDIS_URL",
      (redis) => ({ ...withRedis(redis), REDIS_SENTINELS: "127.0.0.1:26379", REDIS_SENTINEL_MASTER: "m" }),
      2,
      /configuration error: REDIS_SENTINELS: is set beside REDIS_URL: set one of them/,
    ],
    [
      "REDIS_SENTINELS without REDIS_SENTINEL_MASTER",
      () => ({ ...base(), REDIS_SENTINELS: "127.0.0.1:26379" }),
      2,
      /configuration error: REDIS_SENTINEL_MASTER: required with REDIS_SENTINELS/,
    ],
    [
      "a sentinel address that is not host:port",
      () => ({ ...base(), REDIS_SENTINELS: "127.0.0.1:26379,redis://x", REDIS_SENTINEL_MASTER: "m" }),
      2,
      /configuration error: REDIS_SENTINELS: expected host:port, got redis:\/\/x/,
    ],
  ];

  it.concurrent.each(cases)(
    "%s: exits promptly with one line, releasing Redis",
    (_name, env, code, line) =>
      withRedisProxy(async (redis) => {
        const exit = await run(["sidecar"], env(redis.url));
        expectFailFast(exit, code, "sidecar", line);
        expect(await redisConnectionsOpen(redis)).toBe(0);
      }),
    EXIT_DEADLINE_MS + 15_000,
  );
});

describe("gatehouse serve", () => {
  const env = (appName: string, redis: string, database: { url?: string; schema?: string } = {}) => ({
    GATEHOUSE_ISSUER: ISSUER,
    // One key for the file: the first serve that reaches the keys creates one under it.
    GATEHOUSE_MASTER_KEY: MASTER_KEY,
    GATEHOUSE_LISTEN: "127.0.0.1:0",
    GATEHOUSE_HTTP_LISTEN: "127.0.0.1:0",
    GATEHOUSE_ADMIN_LISTEN: "127.0.0.1:0",
    GATEHOUSE_REVOCATION_STREAM: stream,
    REDIS_URL: redis,
    DATABASE_URL: databaseUrl(database.url ?? TEST_DATABASE_URL, database.schema ?? migrated.schema, appName),
  });
  const noRedis = { REDIS_URL: "", GATEHOUSE_REVOCATION: "none" };
  const pgAt = (path: string, user = "postgres") => {
    const url = new URL(TEST_DATABASE_URL);
    url.username = user;
    url.pathname = path;
    return url.toString();
  };

  const cases: [string, (app: string, redis: string) => Record<string, string>, 1 | 2, RegExp][] = [
    [
      "no revocation stream (no REDIS_URL) and GATEHOUSE_REVOCATION unset",
      (app, redis) => ({ ...env(app, redis), REDIS_URL: "" }),
      2,
      /configuration error: GATEHOUSE_REVOCATION: no revocation stream to publish to: set REDIS_URL \(or REDIS_SENTINELS\), or GATEHOUSE_REVOCATION=none/,
    ],
    [
      "GATEHOUSE_REVOCATION=none beside REDIS_URL",
      (app, redis) => ({ ...env(app, redis), GATEHOUSE_REVOCATION: "none" }),
      2,
      /configuration error: GATEHOUSE_REVOCATION: is none but REDIS_URL \(or REDIS_SENTINELS\) is set/,
    ],
    [
      "database server unreachable",
      (app, redis) => ({
        ...env(app, redis),
        DATABASE_URL: databaseUrl("postgres://postgres@127.0.0.1:1/test", undefined, app),
      }),
      1,
      /DATABASE_URL: cannot reach the database server at 127\.0\.0\.1:1 \(ECONNREFUSED\): start Postgres or fix the host and port/,
    ],
    [
      "database missing",
      (app, redis) => env(app, redis, { url: pgAt("/gatehouse_failfast_nowhere") }),
      2,
      /configuration error: DATABASE_URL: database "gatehouse_failfast_nowhere" does not exist on .*: create it or fix the database name/,
    ],
    [
      "authentication failed",
      (app, redis) =>
        env(app, redis, { url: pgAt(new URL(TEST_DATABASE_URL).pathname, "gatehouse_failfast_nobody") }),
      2,
      /configuration error: DATABASE_URL: the server at .* refused user "gatehouse_failfast_nobody" .*: fix the user or password/,
    ],
    [
      "schema never migrated",
      (app, redis) => env(app, redis, { schema: emptySchema }),
      1,
      /DATABASE_URL: schema "t_fail_fast_empty_\w+" has no Gatehouse tables: run `gatehouse migrate` first/,
    ],
    [
      "schema one migration behind",
      (app, redis) => env(app, redis, { schema: behind.schema }),
      1,
      /DATABASE_URL: schema "t_fail_fast_behind_\w+" is missing 1 migration \(\w+ the latest\): run `gatehouse migrate` first/,
    ],
    [
      "gRPC port in use",
      (app, redis) => ({ ...env(app, redis), GATEHOUSE_LISTEN: `127.0.0.1:${takenPort}` }),
      1,
      /GATEHOUSE_LISTEN: 127\.0\.0\.1:\d+ is already in use: stop what listens there/,
    ],
    [
      "HTTP port in use",
      (app, redis) => ({ ...env(app, redis), GATEHOUSE_HTTP_LISTEN: `127.0.0.1:${takenPort}` }),
      1,
      /GATEHOUSE_HTTP_LISTEN: .* is already in use/,
    ],
    [
      "HTTP port in use, without Redis",
      (app, redis) => ({ ...env(app, redis), ...noRedis, GATEHOUSE_HTTP_LISTEN: `127.0.0.1:${takenPort}` }),
      1,
      /GATEHOUSE_HTTP_LISTEN: .* is already in use/,
    ],
    [
      "admin port in use",
      (app, redis) => ({ ...env(app, redis), GATEHOUSE_ADMIN_LISTEN: `127.0.0.1:${takenPort}` }),
      1,
      /GATEHOUSE_ADMIN_LISTEN: 127\.0\.0\.1:\d+ is already in use/,
    ],
    [
      "a bad setting",
      (app, redis) => ({ ...env(app, redis), GATEHOUSE_LISTEN: "nowhere" }),
      2,
      /configuration error: GATEHOUSE_LISTEN: /,
    ],
    [
      "REDIS_SENTINELS beside REDIS_URL",
      (app, redis) => ({
        ...env(app, redis),
        REDIS_SENTINELS: "127.0.0.1:26379",
        REDIS_SENTINEL_MASTER: "m",
      }),
      2,
      /configuration error: REDIS_SENTINELS: is set beside REDIS_URL: set one of them/,
    ],
    [
      "REDIS_PASSWORD beside REDIS_URL (which carries its own)",
      (app, redis) => ({ ...env(app, redis), REDIS_PASSWORD: "hunter2" }),
      2,
      /configuration error: REDIS_PASSWORD: applies only with REDIS_SENTINELS; with REDIS_URL, credentials go in the URL/,
    ],
  ];

  it.concurrent.each(cases)(
    "%s: exits promptly with one line, releasing Postgres and Redis",
    (_name, envFor, code, line) =>
      withRedisProxy(async (redis) => {
        const app = `ff_${randomBytes(5).toString("hex")}`;
        const exit = await run(["serve"], envFor(app, redis.url));
        expectFailFast(exit, code, "serve", line);
        expect(await backendsOf(app)).toBe(0);
        expect(await redisConnectionsOpen(redis)).toBe(0);
      }),
    EXIT_DEADLINE_MS + 15_000,
  );

  it("runs without a stream only when told GATEHOUSE_REVOCATION=none, and then says so: log, /readyz, metric", async () => {
    const app = `ff_${randomBytes(5).toString("hex")}`;
    const port = await freePort();
    const adminPort = await freePort();
    let readyz: unknown;
    let metrics = "";
    const exit = await run(
      ["serve"],
      {
        ...env(app, ""),
        ...noRedis,
        GATEHOUSE_HTTP_LISTEN: `127.0.0.1:${port}`,
        GATEHOUSE_ADMIN_LISTEN: `127.0.0.1:${adminPort}`,
        GATEHOUSE_LOG_LEVEL: "info",
      },
      {
        when: /"msg":"token service listening"/,
        async whileRunning() {
          readyz = await (await fetch(`http://127.0.0.1:${port}/readyz`)).json();
          metrics = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
        },
      },
    );
    expect(exit.hung).toBe(false);
    expect(exit.leftover).toBe(false);
    expect(exit.code).toBe(0);
    expect(exit.stderr).toBe("");
    const warning = exit.stdout.split("\n").find((l) => l.includes("GATEHOUSE_REVOCATION=none"));
    expect(JSON.parse(warning!)).toMatchObject({ level: "warn", revocation: "none" });
    expect(readyz).toMatchObject({ ready: true, revocation: "none" });
    expect(metrics).toMatch(/gatehouse_token_revocation_transport\{transport="none"[^}]*\} 1/);
    expect(await backendsOf(app)).toBe(0);
  }, 60_000);
});

describe("commands that touch the database directly", () => {
  const direct = (appName: string, schema: string | undefined, base = TEST_DATABASE_URL) => ({
    DATABASE_URL: databaseUrl(base, schema, appName),
  });
  const cases: [string, string[], (app: string) => Record<string, string>, 1 | 2, RegExp][] = [
    [
      "clients create --direct before migrating",
      ["clients", "create", "--admin", "--direct"],
      (app) => direct(app, emptySchema),
      1,
      /^gatehouse clients: DATABASE_URL: schema "\w+" has no Gatehouse tables: run `gatehouse migrate` first$/,
    ],
    [
      "clients create --direct, database unreachable",
      ["clients", "create", "--admin", "--direct"],
      (app) => direct(app, undefined, "postgres://postgres@127.0.0.1:1/test"),
      1,
      /DATABASE_URL: cannot reach the database server/,
    ],
    [
      "keys rotate-successor before migrating",
      ["keys", "rotate-successor"],
      (app) => ({ ...direct(app, emptySchema), GATEHOUSE_MASTER_KEY: randomBytes(32).toString("base64") }),
      1,
      /DATABASE_URL: schema "\w+" has no Gatehouse tables: run `gatehouse migrate` first/,
    ],
    [
      "dev, database unreachable",
      ["dev", "--data", join(scratch, "dev"), "--any-ports"],
      (app) => direct(app, undefined, "postgres://postgres@127.0.0.1:1/test"),
      1,
      /^gatehouse dev: DATABASE_URL: cannot reach the database server at 127\.0\.0\.1:1/,
    ],
    [
      "migrate, database unreachable",
      ["migrate"],
      (app) => direct(app, undefined, "postgres://postgres@127.0.0.1:1/test"),
      1,
      /^gatehouse migrate: DATABASE_URL: cannot reach the database server at 127\.0\.0\.1:1/,
    ],
    [
      "migrate, database missing",
      ["migrate"],
      (app) => {
        const url = new URL(TEST_DATABASE_URL);
        url.pathname = "/gatehouse_failfast_nowhere";
        return direct(app, undefined, url.toString());
      },
      2,
      /^gatehouse migrate: configuration error: DATABASE_URL: database "gatehouse_failfast_nowhere" does not exist/,
    ],
  ];

  it.concurrent.each(cases)(
    "%s: exits promptly with one line, releasing Postgres",
    async (_name, args, envFor, code, line) => {
      const app = `ff_${randomBytes(5).toString("hex")}`;
      const exit = await run(args, envFor(app));
      expectFailFast(exit, code, args[0]!, line);
      expect(await backendsOf(app)).toBe(0);
    },
    EXIT_DEADLINE_MS + 15_000,
  );
});
