import { type ChildProcess, execFile, spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type TestDatabase, useTestDatabase } from "../support/database.ts";
import { type TestRedis, useTestRedis } from "../support/redis.ts";

/**
 * `npm start` (`gatehouse dev`) as a newcomer meets it: a subprocess on a fresh data directory,
 * its banner, and the printed walk-through run as printed, through bash and curl. Ports are the
 * OS's pick (--any-ports) so parallel test files never collide; every start is stopped with SIGINT
 * to its process group, as Ctrl-C does, and must leave no process behind.
 */
const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const BIN = join(ROOT, "bin", "gatehouse.mjs");
/** Start-up migrates and compiles wasm: slow on a busy 2-core machine. */
const START_TIMEOUT_MS = 150_000;
const READY_LINE = "Ctrl-C stops everything.";

interface DevProcess {
  child: ChildProcess;
  output(): string;
  /** Resolves with the banner text once it is printed. */
  banner: Promise<string>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const started: DevProcess[] = [];
const tempDirs: string[] = [];

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "gatehouse-dev-test-"));
  tempDirs.push(dir);
  return dir;
}

/** The environment of a clean machine: no database, Redis or Gatehouse settings inherited from ours. */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k === "DATABASE_URL" || k === "REDIS_URL" || k.startsWith("GATEHOUSE_") || k.startsWith("VITEST"))
      continue;
    env[k] = v;
  }
  return { ...env, ...extra };
}

function startDev(args: string[], env: NodeJS.ProcessEnv = cleanEnv(), cwd = ROOT): DevProcess {
  // Its own process group, so the test can signal it the way a terminal does and then check that
  // nothing in the group survived.
  const child = spawn(process.execPath, [BIN, "dev", ...args], {
    cwd,
    env,
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal })),
  );
  const banner = new Promise<string>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`no banner after ${START_TIMEOUT_MS} ms:\n${out}\n${err}`)),
      START_TIMEOUT_MS,
    );
    child.stdout!.on("data", (d: Buffer) => {
      out += d;
      const end = out.indexOf(READY_LINE);
      if (end !== -1) {
        clearTimeout(timer);
        const start = out.lastIndexOf("Gatehouse dev is ready", end);
        resolve(out.slice(start, end + READY_LINE.length));
      }
    });
    child.stderr!.on("data", (d: Buffer) => {
      err += d;
    });
    void exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`gatehouse dev exited (${code ?? signal}) before its banner:\n${out}\n${err}`));
    });
  });
  banner.catch(() => {});
  const dev = { child, output: () => `${out}\n${err}`, banner, exited };
  started.push(dev);
  return dev;
}

function groupAlive(pid: number): boolean {
  try {
    process.kill(-pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== "ESRCH";
  }
}

/**
 * Ctrl-C (SIGINT to the whole process group), or a service manager's SIGTERM. Resolves with the
 * exit once every process in the group is gone.
 */
async function interrupt(dev: DevProcess, signal: NodeJS.Signals = "SIGINT") {
  process.kill(-dev.child.pid!, signal);
  const exit = await dev.exited;
  const deadline = Date.now() + 10_000;
  while (groupAlive(dev.child.pid!) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  return { ...exit, groupGone: !groupAlive(dev.child.pid!) };
}

interface Step {
  title: string;
  command: string;
}

/** The numbered walk-through as printed: a `# N. title` line, then its one command line. */
function stepsOf(banner: string): Step[] {
  const steps: Step[] = [];
  const re = /^ {2}# (\d+)\. (.+)\n {2}(.+)$/gm;
  for (const m of banner.matchAll(re)) {
    expect(Number(m[1])).toBe(steps.length + 1);
    steps.push({ title: m[2]!, command: m[3]! });
  }
  return steps;
}

/** Runs the steps in order in one bash, as someone pasting them into one terminal; returns each step's output. */
function runSteps(steps: readonly Step[], cwd: string): Promise<string[]> {
  const marker = "@@gatehouse-step@@";
  const script = steps.map((s) => `echo '${marker}'\n${s.command}\necho`).join("\n");
  return new Promise((resolve, reject) => {
    execFile("bash", ["-c", script], { cwd, timeout: 60_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`walk-through failed: ${err.message}\n${stdout}\n${stderr}`));
      else resolve(stdout.split(`${marker}\n`).slice(1));
    });
  });
}

interface HttpAnswer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** `curl -i` output: the last status line, its headers and the body. */
function parseCurlI(text: string): HttpAnswer {
  const [head = "", ...rest] = text.split(/\r?\n\r?\n/);
  const [statusLine = "", ...headerLines] = head.split(/\r?\n/);
  const headers: Record<string, string> = {};
  for (const line of headerLines) {
    const i = line.indexOf(":");
    if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
  }
  return { status: Number(statusLine.split(" ")[1]), headers, body: rest.join("\n\n").trim() };
}

const field = (banner: string, re: RegExp) => {
  const m = re.exec(banner);
  if (!m) throw new Error(`banner has no ${re}:\n${banner}`);
  return m[1]!;
};

async function curl(args: string[]): Promise<HttpAnswer> {
  const out = await new Promise<string>((resolve, reject) =>
    execFile("curl", ["-s", "-i", ...args], { timeout: 15_000 }, (err, stdout) =>
      err ? reject(err) : resolve(stdout),
    ),
  );
  return parseCurlI(out);
}

/** Runs the printed walk-through and checks every step's answer; returns what later checks need. */
async function walkThrough(banner: string, cwd: string) {
  const steps = stepsOf(banner);
  expect(steps.map((s) => s.title)).toHaveLength(4);
  const [issued, called, revoked, calledAgain] = await runSteps(steps, cwd);

  const tokens = JSON.parse(issued!.trim()) as Record<string, unknown>;
  expect(tokens).toMatchObject({ tokenType: "Bearer", scopes: ["profile"], audience: ["demo-api"] });
  expect(tokens.accessToken).toMatch(/^eyJ[\w-]+\.[\w-]+\.[\w-]+$/);
  expect(tokens.refreshToken).toMatch(/^gthr_/);
  expect(tokens.sessionId).toEqual(expect.any(String));

  const first = parseCurlI(called!.trim());
  expect(first.status).toBe(200);
  expect(JSON.parse(first.body)).toMatchObject({
    hello: "alice",
    identity: { subject: "alice", clientId: "demo-app", scopes: ["profile"], sessionId: tokens.sessionId },
  });

  expect(JSON.parse(revoked!.trim())).toMatchObject({ sessionsRevoked: 1, propagated: true });

  const second = parseCurlI(calledAgain!.trim());
  expect(second.status).toBe(401);
  expect(second.headers["www-authenticate"]).toBe(
    'Bearer realm="gatehouse", error="invalid_token", error_description="session_revoked"',
  );
  expect(JSON.parse(second.body)).toMatchObject({ error: "session_revoked" });
  return { accessToken: tokens.accessToken as string };
}

afterAll(async () => {
  for (const dev of started) {
    if (dev.child.pid !== undefined && groupAlive(dev.child.pid)) {
      try {
        process.kill(-dev.child.pid, "SIGKILL");
      } catch {}
    }
  }
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

describe("npm start (gatehouse dev)", () => {
  it("is what npm start runs", () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as {
      scripts: Record<string, string>;
    };
    expect(pkg.scripts.start).toBe("node bin/gatehouse.mjs dev");
  });

  it(
    "runs the printed walk-through from a fresh data directory, stops cleanly on Ctrl-C, and reuses its data",
    async () => {
      const data = join(tempDir(), "data");
      const dev = startDev(["--data", data, "--any-ports"]);
      const banner = await dev.banner;
      const proxy = field(banner, /proxy +(http:\/\/127\.0\.0\.1:\d+)/);
      const secret = field(banner, /demo client +demo-app +secret (gths_\S+)/);
      expect(banner).toContain(`data            ${data}`);
      expect(banner).toContain("in-process bus");

      const { accessToken } = await walkThrough(banner, tempDir());

      // The policy's public route needs no token; every other route does, and says so (RFC 6750).
      expect((await curl([`${proxy}/public`])).status).toBe(200);
      const anonymous = await curl([`${proxy}/hello`]);
      expect(anonymous.status).toBe(401);
      expect(anonymous.headers["www-authenticate"]).toBe('Bearer realm="gatehouse"');
      // Identity headers a caller forges never reach the app.
      const forged = await curl([`${proxy}/hello`, "-H", "x-gatehouse-subject: mallory"]);
      expect(forged.status).toBe(401);

      const stop = await interrupt(dev);
      expect(stop, dev.output()).toEqual({ code: 0, signal: null, groupGone: true });
      expect(dev.output()).toContain('"msg":"stopped"');

      // Second start, same folder: same credentials, same signing key, and the revocation holds.
      const again = startDev(["--data", data, "--any-ports"]);
      const banner2 = await again.banner;
      expect(field(banner2, /demo client +demo-app +secret (gths_\S+)/)).toBe(secret);
      const proxy2 = field(banner2, /proxy +(http:\/\/127\.0\.0\.1:\d+)/);
      const old = await curl([`${proxy2}/hello`, "-H", `authorization: Bearer ${accessToken}`]);
      expect(old.status).toBe(401);
      expect(old.headers["www-authenticate"]).toContain('error_description="session_revoked"');
      await walkThrough(banner2, tempDir());
      expect(await interrupt(again)).toEqual({ code: 0, signal: null, groupGone: true });
    },
    2 * START_TIMEOUT_MS + 60_000,
  );

  it(
    "keeps nothing with --memory, and stops cleanly on SIGTERM too",
    async () => {
      // Run from an empty folder, where the default data directory (.gatehouse) would appear.
      const cwd = tempDir();
      const dev = startDev(["--memory", "--any-ports"], cleanEnv(), cwd);
      const banner = await dev.banner;
      expect(banner).toContain("in memory");
      await walkThrough(banner, tempDir());
      expect(await interrupt(dev, "SIGTERM")).toEqual({ code: 0, signal: null, groupGone: true });
      expect(readdirSync(cwd)).toEqual([]);
    },
    START_TIMEOUT_MS + 60_000,
  );

  it(
    "takes the compose placeholder master key, which gatehouse serve refuses",
    async () => {
      const env = cleanEnv({ GATEHOUSE_MASTER_KEY: "REVWLU9OTFktZ2F0ZWhvdXNlLW1hc3Rlci1rZXktMzI=" });
      const dev = startDev(["--memory", "--any-ports"], env, tempDir());
      expect(await dev.banner).toContain("in memory");
      expect(await interrupt(dev, "SIGTERM")).toEqual({ code: 0, signal: null, groupGone: true });
    },
    START_TIMEOUT_MS + 30_000,
  );

  it("refuses --memory with --data (usage error, exit 2)", async () => {
    const dev = startDev(["--memory", "--data", tempDir()]);
    expect((await dev.exited).code).toBe(2);
    expect(dev.output()).toContain("--memory and --data exclude each other");
  });
});

describe("gatehouse dev with DATABASE_URL and REDIS_URL", () => {
  let tdb: TestDatabase;
  let tredis: TestRedis;
  beforeAll(async () => {
    tdb = await useTestDatabase();
    tredis = await useTestRedis("dev");
  });
  afterAll(async () => {
    await tdb?.drop();
    await tredis?.cleanup();
  });

  it(
    "uses Postgres and follows revocations through the Redis stream",
    async () => {
      const dev = startDev(
        ["--data", join(tempDir(), "data"), "--any-ports"],
        cleanEnv({
          DATABASE_URL: tdb.url,
          REDIS_URL: tredis.url,
          GATEHOUSE_REVOCATION_STREAM: `${tredis.prefix}revocations`,
        }),
      );
      const banner = await dev.banner;
      expect(banner).toContain(`Redis stream ${tredis.prefix}revocations`);
      expect(banner).toContain(`schema ${tdb.schema}`);
      await walkThrough(banner, tempDir());
      // The session and its revocation are in the test's Postgres schema, the event on its stream.
      const session = await tdb.db.prisma.session.findFirst({ where: { subject: "alice" } });
      expect(session?.revokedAt).toBeInstanceOf(Date);
      expect(await tredis.redis.xlen(`${tredis.prefix}revocations`)).toBeGreaterThan(0);
      expect(await interrupt(dev)).toEqual({ code: 0, signal: null, groupGone: true });
    },
    START_TIMEOUT_MS + 60_000,
  );
});
