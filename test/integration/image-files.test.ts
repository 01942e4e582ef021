import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { imageAllocator } from "../../bench/lib/image-allocator.ts";
import { all, copies, DOCKERFILES, envOf, parseDockerfile } from "../deploy/dockerfile-stages.ts";
import { dropSchema, testSchemaName } from "../support/database.ts";
import { freePort } from "../support/ports.ts";
import { TEST_DATABASE_URL } from "../support/services.ts";

/**
 * What each image holds at run time, without a Docker engine: the build (`npm run build`), then the
 * build stage's `scripts/runtime-files.mjs` with the arguments its Dockerfile gives, then the final
 * stage's COPY lines, into a folder standing for the image's /app, outside this repository so that
 * nothing resolves from its node_modules. The folders are measured (targets: sidecar ≤ 60 MB, token
 * service ≤ 150 MB) and their commands run the way the images run them (the final stage's ENV, the
 * ENTRYPOINT's launcher): a real `migrate` and `serve` against Postgres, a real sidecar against that
 * token service, and the launcher refusing a missing or stale build.
 */
const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const work = mkdtempSync(join(tmpdir(), "gatehouse-image-files-"));
const dist = join(work, "dist");
const MB = 1024 * 1024;
const MASTER_KEY = randomBytes(32).toString("base64");
const TARGET_MB = { "token-service": 150, sidecar: 60 } as const;

type Role = keyof typeof DOCKERFILES;
interface Image {
  app: string;
  env: Record<string, string>;
  bytes: number;
}
const images = {} as Record<Role, Image>;
const children: ChildProcess[] = [];
const schema = testSchemaName("image_files");
const databaseUrl = (() => {
  const url = new URL(TEST_DATABASE_URL);
  url.searchParams.set("schema", schema);
  return url.toString();
})();

function bytesUnder(dir: string): number {
  let total = 0;
  for (const entry of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (entry.isFile()) total += statSync(join(entry.parentPath, entry.name)).size;
  }
  return total;
}

/** The image's /app for `role`, staged as its Dockerfile says. */
function stageImage(role: Role): Image {
  const { stages, final } = parseDockerfile(DOCKERFILES[role]);
  const builder = stages.find((s) => s.name === "build")!;
  const run = all(builder, "RUN")
    .map((r) => r.getArgumentsContent() ?? "")
    .join("\n");
  const [, scriptRole, scriptOut] = /node scripts\/runtime-files\.mjs (\S+) (\S+)/.exec(run)!;
  const staged = join(work, role, "build-stage-out");
  const r = spawnSync(process.execPath, ["scripts/runtime-files.mjs", scriptRole!, staged, "--dist", dist], {
    cwd: ROOT,
    encoding: "utf8",
  });
  expect(r.stderr).toBe("");
  expect(r.status).toBe(0);
  const app = join(work, role, "app");
  const inImage = (path: string) => join(app, path.replace(/^\/app\/?/, ""));
  for (const line of copies(final)) {
    for (const source of line.sources) {
      const from =
        line.from === null
          ? join(ROOT, source)
          : join(staged, source.replace(new RegExp(`^${scriptOut}/?`), ""));
      const into = line.dest.endsWith("/")
        ? join(inImage(line.dest), source.endsWith("/") ? "" : basename(source))
        : inImage(line.dest);
      mkdirSync(dirname(into), { recursive: true });
      cpSync(from, into, { recursive: true, dereference: true });
    }
  }
  const env = Object.fromEntries(Object.entries(envOf(final)).map(([k, v]) => [k, v ?? ""]));
  if (env.LD_PRELOAD) {
    // The final stage installs libjemalloc2 and links it at LD_PRELOAD's path; this machine's copy
    // of the same Debian package stands in for that link.
    const local = imageAllocator().env.LD_PRELOAD;
    expect(
      local,
      "libjemalloc2 installed here (apt-get install -y libjemalloc2), as in the image",
    ).toBeDefined();
    env.LD_PRELOAD = local!;
  }
  return { app, env, bytes: bytesUnder(app) };
}

/** Runs the image's ENTRYPOINT with `args` and the image's ENV plus `env`; nothing else inherited. */
function runImage(image: Image, args: string[], env: Record<string, string> = {}) {
  return spawnSync(process.execPath, [join(image.app, "bin/gatehouse.mjs"), ...args], {
    cwd: image.app,
    env: { PATH: process.env.PATH, ...image.env, ...env },
    encoding: "utf8",
    timeout: 60_000,
  });
}

function startImage(image: Image, args: string[], env: Record<string, string>) {
  const child = spawn(process.execPath, [join(image.app, "bin/gatehouse.mjs"), ...args], {
    cwd: image.app,
    env: { PATH: process.env.PATH, ...image.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.push(child);
  let output = "";
  child.stdout!.on("data", (d) => {
    output += d;
  });
  child.stderr!.on("data", (d) => {
    output += d;
  });
  return { child, output: () => output };
}

async function status(url: string): Promise<number> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
    await res.body?.cancel();
    return res.status;
  } catch {
    return 0;
  }
}

function exited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once("exit", (code) => resolve(code)));
}

beforeAll(() => {
  // Nothing above the staged folders may supply packages the images lack.
  for (let dir = work; dir !== dirname(dir); dir = dirname(dir)) {
    expect(existsSync(join(dirname(dir), "node_modules")), `${dirname(dir)}/node_modules`).toBe(false);
  }
  const built = spawnSync(
    process.execPath,
    ["scripts/build.mjs", "--out", dist, "--revision", "test-revision"],
    {
      cwd: ROOT,
      encoding: "utf8",
    },
  );
  expect(built.stderr).toBe("");
  expect(built.status).toBe(0);
  for (const role of Object.keys(DOCKERFILES) as Role[]) images[role] = stageImage(role);
}, 180_000);

afterAll(async () => {
  for (const child of children) if (child.exitCode === null) child.kill("SIGKILL");
  rmSync(work, { recursive: true, force: true });
  await dropSchema(schema);
});

describe("the runtime file set of each image", () => {
  it.each(Object.keys(TARGET_MB) as Role[])("%s stays within its size target", (role) => {
    const { bytes, app } = images[role];
    const mb = bytes / MB;
    console.log(`runtime file set ${role}: ${mb.toFixed(1)} MB (target ≤ ${TARGET_MB[role]} MB)`);
    expect(mb).toBeLessThanOrEqual(TARGET_MB[role]);
    // Compiled JavaScript only: no TypeScript sources, no tsx, esbuild, Prisma CLI, PGlite or pino-pretty.
    const files = readdirSync(app, { recursive: true }) as string[];
    expect(files.filter((f) => !f.startsWith("node_modules/") && /\.[cm]?ts$/.test(f))).toEqual([]);
    for (const dev of ["tsx", "esbuild", "prisma", "typescript", "@electric-sql", "pino-pretty"]) {
      expect(existsSync(join(app, "node_modules", dev)), dev).toBe(false);
    }
    expect(JSON.parse(readFileSync(join(app, "dist/build-info.json"), "utf8"))).toEqual({
      version: JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")).version,
      revision: "test-revision",
    });
  });

  it("bundles production packages only: development ones (PGlite among them) stay external", () => {
    const lock = JSON.parse(readFileSync(join(ROOT, "package-lock.json"), "utf8")) as {
      packages: Record<string, { dev?: boolean; devOptional?: boolean }>;
    };
    for (const bundle of ["cli", "sidecar"]) {
      const manifest = JSON.parse(readFileSync(join(dist, bundle, "manifest.json"), "utf8")) as {
        inputs: Record<string, string>;
      };
      const packages = Object.keys(manifest.inputs)
        .filter((f) => f.startsWith("node_modules/"))
        .map((f) => f.replace(/\/package\.json$/, ""));
      expect(packages.length, bundle).toBeGreaterThan(5);
      for (const pkg of packages) {
        const entry = lock.packages[pkg]!;
        expect(entry.dev === true || entry.devOptional === true, `${pkg} in dist/${bundle}`).toBe(false);
      }
    }
  });

  it("the sidecar image holds neither Prisma nor the token service", () => {
    const { app } = images.sidecar;
    expect(existsSync(join(app, "dist/cli"))).toBe(false);
    expect(existsSync(join(app, "prisma"))).toBe(false);
    expect(readdirSync(join(app, "node_modules")).filter((n) => n.startsWith("@prisma"))).toEqual([]);
    expect(existsSync(join(app, "node_modules/sodium-native"))).toBe(false);
  });

  it("the token-service image holds sodium-native's addon for its own platform only", () => {
    const prebuilds = join(images["token-service"].app, "node_modules/sodium-native/prebuilds");
    expect(readdirSync(prebuilds)).toEqual([`${process.platform}-${process.arch}`]);
  });
});

describe("the token-service image", () => {
  it("answers serve --help from the compiled build", () => {
    const r = runImage(images["token-service"], ["serve", "--help"]);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^Usage: gatehouse serve/);
  });

  it("migrates a fresh schema, then serves: /readyz 200, a JWKS, a clean stop", async () => {
    const migrated = runImage(images["token-service"], ["migrate"], { DATABASE_URL: databaseUrl });
    expect(migrated.status, migrated.stderr).toBe(0);
    expect(migrated.stdout).toMatch(/applied \d+/);
    const [grpc, http] = [await freePort(), await freePort()];
    const serve = startImage(images["token-service"], ["serve"], {
      DATABASE_URL: databaseUrl,
      GATEHOUSE_REVOCATION: "none",
      GATEHOUSE_ISSUER: "https://image-files.test",
      GATEHOUSE_MASTER_KEY: MASTER_KEY,
      GATEHOUSE_LISTEN: `127.0.0.1:${grpc}`,
      GATEHOUSE_HTTP_LISTEN: `127.0.0.1:${http}`,
      GATEHOUSE_ADMIN_LISTEN: "127.0.0.1:0",
    });
    await vi.waitFor(
      async () => {
        if (serve.child.exitCode !== null) throw new Error(`serve exited: ${serve.output()}`);
        expect(await status(`http://127.0.0.1:${http}/readyz`)).toBe(200);
      },
      { timeout: 60_000, interval: 50 },
    );
    const jwks = (await (await fetch(`http://127.0.0.1:${http}/.well-known/jwks.json`)).json()) as {
      keys: unknown[];
    };
    expect(jwks.keys.length).toBeGreaterThan(0);
    // The token service runs on the jemalloc its image preloads (the benchmarks measured it so).
    const mapped = (pid: number) => readFileSync(`/proc/${pid}/maps`, "utf8").includes("libjemalloc");
    expect(mapped(serve.child.pid!)).toBe(true);
    // And signs with libsodium: its addon for this platform was staged, and found from the bundle.
    expect(serve.output()).toMatch(/"signer":"libsodium".*"msg":"signing with key"/);

    // The sidecar image guards with that token service's keys.
    const [proxy, control] = [await freePort(), await freePort()];
    const sidecar = startImage(images.sidecar, ["sidecar"], {
      GATEHOUSE_ISSUER: "https://image-files.test",
      GATEHOUSE_AUDIENCES: "orders",
      GATEHOUSE_TOKEN_SERVICE_URL: `http://127.0.0.1:${http}`,
      GATEHOUSE_UPSTREAM: "http://127.0.0.1:9",
      GATEHOUSE_PROXY_LISTEN: `127.0.0.1:${proxy}`,
      GATEHOUSE_CONTROL_LISTEN: `127.0.0.1:${control}`,
      GATEHOUSE_REVOCATION: "none",
    });
    await vi.waitFor(
      async () => {
        if (sidecar.child.exitCode !== null) throw new Error(`sidecar exited: ${sidecar.output()}`);
        expect(await status(`http://127.0.0.1:${control}/readyz`)).toBe(200);
      },
      { timeout: 60_000, interval: 50 },
    );
    expect(await status(`http://127.0.0.1:${proxy}/orders`)).toBe(401);
    expect(sidecar.output()).toContain('"runtime":"bundle"');
    expect(mapped(sidecar.child.pid!), "the sidecar image keeps glibc's malloc").toBe(false);

    for (const { child } of [sidecar, serve]) {
      const done = exited(child);
      child.kill("SIGTERM");
      expect(await done).toBe(0);
    }
  }, 150_000);

  it("refuses pretty logs without pino-pretty, with one line naming the setting", () => {
    const r = runImage(images["token-service"], ["serve"], {
      DATABASE_URL: databaseUrl,
      GATEHOUSE_REVOCATION: "none",
      GATEHOUSE_ISSUER: "https://image-files.test",
      GATEHOUSE_MASTER_KEY: MASTER_KEY,
      GATEHOUSE_LOG_PRETTY: "true",
    });
    expect(r.status).toBe(2);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).toMatch(/GATEHOUSE_LOG_PRETTY: pretty logs need pino-pretty/);
  });

  it("runs `dev` only with DATABASE_URL: PGlite is not installed", () => {
    const r = runImage(images["token-service"], ["dev", "--memory", "--any-ports"]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/DATABASE_URL: unset, and the embedded database \(PGlite/);
  });
});

describe("the launcher with GATEHOUSE_RUNTIME=dist", () => {
  it("refuses a missing build with one line and exit 1: `serve` in the sidecar image", () => {
    const r = runImage(images.sidecar, ["serve", "--help"]);
    expect(r.status).toBe(1);
    expect(r.stdout).toBe("");
    expect(r.stderr).toMatch(
      /^gatehouse: GATEHOUSE_RUNTIME=dist but no bundle at .*dist\/cli; run `npm run build`/,
    );
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
  });

  it("refuses a build whose external package changed since it was built", () => {
    const copy = join(work, "sidecar-stale");
    cpSync(images.sidecar.app, copy, { recursive: true });
    const pino = join(copy, "node_modules/pino/package.json");
    writeFileSync(pino, `${readFileSync(pino, "utf8")}\n`);
    const r = runImage({ ...images.sidecar, app: copy }, ["sidecar", "--help"]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(
      /^gatehouse: GATEHOUSE_RUNTIME=dist but node_modules\/pino\/package.json changed since/,
    );
    rmSync(join(copy, "node_modules/pino"), { recursive: true });
    const missing = runImage({ ...images.sidecar, app: copy }, ["sidecar", "--help"]);
    expect(missing.status).toBe(1);
    expect(missing.stderr).toMatch(/node_modules\/pino\/package.json is missing/);
  });

  it("in a checkout, refuses a build older than an edited source instead of compiling it", () => {
    const stale = join(work, "dist-stale");
    cpSync(dist, stale, { recursive: true });
    const manifestPath = join(stale, "cli/manifest.json");
    const manifest = JSON.parse(readFileSync(manifestPath, "utf8")) as { inputs: Record<string, string> };
    expect(manifest.inputs).toHaveProperty(["services/cli/serve-command.ts"]);
    manifest.inputs["services/cli/serve-command.ts"] = "0".repeat(64);
    writeFileSync(manifestPath, JSON.stringify(manifest));
    const launch = (distDir: string) =>
      spawnSync(process.execPath, [join(ROOT, "bin/gatehouse.mjs"), "serve", "--help"], {
        env: { PATH: process.env.PATH, GATEHOUSE_RUNTIME: "dist", GATEHOUSE_DIST_DIR: distDir },
        encoding: "utf8",
      });
    const refused = launch(stale);
    expect(refused.status).toBe(1);
    expect(refused.stderr).toMatch(/services\/cli\/serve-command\.ts changed since the bundle was built/);
    expect(launch(join(work, "no-such-dist")).stderr).toMatch(/no build at .*build-info\.json missing/);
  });

  it("rejects an unknown GATEHOUSE_RUNTIME with exit 2", () => {
    const r = runImage(images["token-service"], ["--help"], { GATEHOUSE_RUNTIME: "bundel" });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/GATEHOUSE_RUNTIME must be one of auto, tsx, bundle, dist/);
  });
});
