import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type TestDatabase, useTestDatabase } from "../support/database.ts";
import { freePort } from "../support/ports.ts";
import { type TestRedis, useTestRedis } from "../support/redis.ts";
import { ISSUER, startTestTokenService, type TestTokenService } from "../support/sidecar-fixtures.ts";

/**
 * `node bin/gatehouse.mjs sidecar` as a process, the way a pod runs it: from the esbuild bundle when
 * one matching the sources is there, through tsx when it is missing or stale. Bundles are built
 * into a folder of this file's own (GATEHOUSE_BUNDLE_DIR) so dist/sidecar is left alone; it is
 * inside the repository because the bundle resolves its packages from node_modules.
 */
const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const BIN = join(ROOT, "bin/gatehouse.mjs");
mkdirSync(join(ROOT, "dist"), { recursive: true });
const work = mkdtempSync(join(ROOT, "dist", ".launcher-test-"));
const bundleDir = join(work, "bundle");

let tdb: TestDatabase;
let ts: TestTokenService;
let tr: TestRedis;
const children: ChildProcess[] = [];
const upstream = http.createServer((req, res) => {
  res.writeHead(200, { "content-type": "application/json" });
  res.end(JSON.stringify({ subject: req.headers["x-gatehouse-subject"] }));
});

beforeAll(async () => {
  const built = spawnSync(process.execPath, ["scripts/sidecar-bundle.mjs", "--out", bundleDir], {
    cwd: ROOT,
    encoding: "utf8",
  });
  expect(built.stderr).toBe("");
  expect(built.stdout).toContain("sidecar bundle: built");
  tdb = await useTestDatabase();
  ts = await startTestTokenService(tdb);
  tr = await useTestRedis("launcher");
  await new Promise<void>((r) => upstream.listen(0, "127.0.0.1", () => r()));
}, 60_000);

afterAll(async () => {
  for (const child of children) if (child.exitCode === null) child.kill("SIGKILL");
  upstream.close();
  await ts?.service.shutdown();
  await tr?.cleanup();
  await tdb?.drop();
  rmSync(work, { recursive: true, force: true });
});

function get(port: number, path: string, headers: http.OutgoingHttpHeaders = {}) {
  return new Promise<{ status: number; body: string }>((resolve) => {
    const req = http.get({ host: "127.0.0.1", port, path, headers, agent: false }, (res) => {
      let body = "";
      res.on("data", (d) => {
        body += d;
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("error", () => resolve({ status: 0, body: "" }));
  });
}

interface Launched {
  child: ChildProcess;
  proxyPort: number;
  readyMs: number;
  /** The JSON log lines so far. */
  lines(): Record<string, unknown>[];
}

/** Spawns the launcher and waits for /readyz 200 (or the process to exit). */
async function launch(env: Record<string, string>): Promise<Launched> {
  const [proxyPort, controlPort] = [await freePort(), await freePort()];
  const started = performance.now();
  const child = spawn(process.execPath, [BIN, "sidecar"], {
    env: {
      PATH: process.env.PATH,
      GATEHOUSE_ISSUER: ISSUER,
      GATEHOUSE_AUDIENCES: "orders",
      GATEHOUSE_TOKEN_SERVICE_URL: ts.url,
      GATEHOUSE_UPSTREAM: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`,
      GATEHOUSE_PROXY_LISTEN: `127.0.0.1:${proxyPort}`,
      GATEHOUSE_CONTROL_LISTEN: `127.0.0.1:${controlPort}`,
      GATEHOUSE_LOG_LEVEL: "info",
      GATEHOUSE_LOG_PRETTY: "false",
      // Without Redis these sidecars follow no revocation stream, and must be told that is intended.
      GATEHOUSE_REVOCATION: env.REDIS_URL === undefined ? "none" : "stream",
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.push(child);
  let out = "";
  child.stdout!.on("data", (d) => {
    out += d;
  });
  let err = "";
  child.stderr!.on("data", (d) => {
    err += d;
  });
  const lines = () =>
    out
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  const deadline = started + 20_000;
  while ((await get(controlPort, "/readyz")).status !== 200) {
    if (child.exitCode !== null) throw new Error(`sidecar exited with ${child.exitCode}: ${out}${err}`);
    if (performance.now() > deadline) throw new Error(`sidecar not ready: ${out}`);
    await new Promise((r) => setTimeout(r, 5));
  }
  return { child, proxyPort, readyMs: performance.now() - started, lines };
}

async function stop(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null) return child.exitCode;
  const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
  child.kill("SIGTERM");
  return exited;
}

function rssMb(pid: number): number {
  return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]) / 1024;
}

function runtimeOf(launched: Launched): unknown {
  return launched.lines().find((l) => l.msg === "sidecar starting")?.runtime;
}

/** The sidecar guards for real: no token 401, a token from the token service reaches the app. */
async function expectGuarding(launched: Launched): Promise<void> {
  expect((await get(launched.proxyPort, "/orders")).status).toBe(401);
  const { token } = await ts.issue("launcher-user", ["orders:read"]);
  const allowed = await get(launched.proxyPort, "/orders", { authorization: `Bearer ${token}` });
  expect(allowed.status).toBe(200);
  expect(JSON.parse(allowed.body)).toEqual({ subject: "launcher-user" });
}

describe("bin/gatehouse.mjs sidecar", () => {
  it("runs from the bundle when it matches the sources, within the footprint target", async () => {
    const launched = await launch({ GATEHOUSE_BUNDLE_DIR: bundleDir });
    expect(runtimeOf(launched)).toBe("bundle");
    await expectGuarding(launched);
    await new Promise((r) => setTimeout(r, 2000));
    const rss = rssMb(launched.child.pid!);
    console.log(
      `bundle, no REDIS_URL: ready ${Math.round(launched.readyMs)} ms, idle RSS ${rss.toFixed(1)} MB`,
    );
    // Issue #5's target (80 MB idle); tsx alone costs more than the margin, so this fails if the
    // launcher stops using the bundle or the bundle starts pulling in heavy modules.
    expect(rss).toBeLessThan(80);
    expect(await stop(launched.child)).toBe(0);
  }, 30_000);

  it("loads the lazy Redis chunks from the bundle when REDIS_URL is set", async () => {
    const launched = await launch({
      GATEHOUSE_BUNDLE_DIR: bundleDir,
      REDIS_URL: tr.url,
      GATEHOUSE_REVOCATION_STREAM: `${tr.prefix}revocations`,
    });
    expect(runtimeOf(launched)).toBe("bundle");
    await expectGuarding(launched);
    await new Promise((r) => setTimeout(r, 2000));
    const rss = rssMb(launched.child.pid!);
    console.log(`bundle, REDIS_URL: ready ${Math.round(launched.readyMs)} ms, idle RSS ${rss.toFixed(1)} MB`);
    expect(rss).toBeLessThan(80);
    expect(await stop(launched.child)).toBe(0);
  }, 30_000);

  it("falls back to tsx when there is no bundle", async () => {
    const launched = await launch({ GATEHOUSE_BUNDLE_DIR: join(work, "nothing-here") });
    expect(runtimeOf(launched)).toBe("tsx");
    await expectGuarding(launched);
    console.log(
      `tsx fallback: ready ${Math.round(launched.readyMs)} ms, RSS ${rssMb(launched.child.pid!).toFixed(1)} MB`,
    );
    expect(await stop(launched.child)).toBe(0);
  }, 30_000);

  it("falls back to tsx when a bundled source has changed since the build", async () => {
    // The same bundle, with the recorded digest of one source no longer what is on disk: exactly
    // what a developer editing that file produces.
    const stale = join(work, "stale");
    cpSync(bundleDir, stale, { recursive: true });
    const manifest = JSON.parse(readFileSync(join(stale, "manifest.json"), "utf8")) as {
      inputs: Record<string, string>;
    };
    expect(manifest.inputs).toHaveProperty(["services/sidecar/proxy/proxy-server.ts"]);
    manifest.inputs["services/sidecar/proxy/proxy-server.ts"] = "0".repeat(64);
    writeFileSync(join(stale, "manifest.json"), JSON.stringify(manifest));
    const launched = await launch({ GATEHOUSE_BUNDLE_DIR: stale });
    expect(runtimeOf(launched)).toBe("tsx");
    expect(await stop(launched.child)).toBe(0);
  }, 30_000);

  it("refuses to start with GATEHOUSE_RUNTIME=bundle and no usable bundle", () => {
    const r = spawnSync(process.execPath, [BIN, "sidecar"], {
      env: {
        PATH: process.env.PATH,
        GATEHOUSE_RUNTIME: "bundle",
        GATEHOUSE_BUNDLE_DIR: join(work, "nothing-here"),
      },
      encoding: "utf8",
    });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/GATEHOUSE_RUNTIME=bundle but no bundle at/);
  });

  it("keeps the bundle free of Prisma and the token service", () => {
    const manifest = JSON.parse(readFileSync(join(bundleDir, "manifest.json"), "utf8")) as {
      inputs: Record<string, string>;
    };
    const inputs = Object.keys(manifest.inputs);
    expect(inputs).toContain("services/cli/sidecar-entry.ts");
    expect(inputs.filter((f) => /services\/(token|gen\/prisma|shared\/database)\//.test(f))).toEqual([]);
  });

  it("bundles production packages only, so the image (installed without dev ones) finds it current", () => {
    const manifest = JSON.parse(readFileSync(join(bundleDir, "manifest.json"), "utf8")) as {
      inputs: Record<string, string>;
    };
    const lock = JSON.parse(readFileSync(join(ROOT, "package-lock.json"), "utf8")) as {
      packages: Record<string, { dev?: boolean }>;
    };
    const packages = Object.keys(manifest.inputs)
      .filter((f) => f.startsWith("node_modules/"))
      .map((f) => f.replace(/\/package\.json$/, ""));
    expect(packages).toContain("node_modules/jose");
    for (const pkg of packages) {
      expect(lock.packages[pkg], pkg).toBeDefined();
      expect(lock.packages[pkg]!.dev, `${pkg} is installed for development only`).not.toBe(true);
    }
  });
});
