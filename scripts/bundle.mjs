// Builds one esbuild bundle of a `gatehouse` entry point (the whole CLI, or the sidecar alone) with
// the manifest bin/sidecar-bundle.mjs checks before the launcher runs it: every bundled input with
// its SHA-256, and the packages left external that must be installed beside it.
//
// Packages are bundled too: one file of hoisted modules starts faster and idles smaller than Node
// resolving and linking hundreds of node_modules files (figures in README.md, "Runtime"), and the
// image then needs only the few packages that cannot be bundled (ALWAYS_EXTERNAL).
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { builtinModules } from "node:module";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { MANIFEST, MANIFEST_FORMAT, sha256Of } from "../bin/sidecar-bundle.mjs";

/**
 * Packages that stay in node_modules, each for a reason bundling cannot fix: pino starts its
 * transport worker (pino-pretty) from files of its own; the schema engine reads its .wasm beside its
 * own file; pg-native is an optional native addon pg probes for; sodium-native loads its prebuilt
 * addon from a path relative to its own files.
 */
const ALWAYS_EXTERNAL = ["pino", "pino-pretty", "@prisma/schema-engine-wasm", "pg-native", "sodium-native"];

/**
 * Writes the bundle of `entry` into `outdir` (entry file `<name>.mjs`, lazily loaded chunks beside
 * it) unless it is already current. Returns "built" or "current". Built beside the old one and renamed
 * into place, so a process starting meanwhile sees the old bundle or the new one, never half of one.
 * `isCurrent(outdir)` says whether the bundle there still matches its inputs.
 */
export async function buildBundle({
  root,
  entry,
  name,
  outdir,
  force = false,
  builderId,
  isCurrent,
  assets = [],
}) {
  const { build, version } = await import("esbuild");
  const builder = `${sha256Of(fileURLToPath(import.meta.url))} ${builderId} esbuild ${version}`;
  if (!force && isCurrent(outdir) && manifestOf(outdir)?.builder === builder) return "current";
  const staging = `${outdir}.tmp-${process.pid}`;
  rmSync(staging, { recursive: true, force: true });
  const devOnly = devOnlyPackages(root);
  const result = await build({
    absWorkingDir: root,
    entryPoints: { [name]: entry },
    outdir: staging,
    outExtension: { ".js": ".mjs" },
    // Flat: a chunk's `new URL("./file", import.meta.url)` finds the assets copied beside it.
    chunkNames: "[name]-[hash]",
    bundle: true,
    splitting: true,
    format: "esm",
    platform: "node",
    target: "node20.19",
    // Dev-only packages stay external (and are loaded only by dev-only paths): bundled, they would
    // make the bundle differ from, and look stale in, an install without them.
    external: [...ALWAYS_EXTERNAL, ...devOnly],
    // Bundled CommonJS packages (ioredis, prom-client, pg) call require() for Node built-ins.
    banner: {
      js: 'import { createRequire as __gatehouseRequire } from "node:module"; const require = __gatehouseRequire(import.meta.url);',
    },
    // Keeps inputs under <root>/node_modules even when that folder is a symlink (a git worktree
    // sharing another checkout's install), so the manifest names files the launcher can find.
    preserveSymlinks: true,
    metafile: true,
    logLevel: "warning",
  });
  const inputs = {};
  for (const file of Object.keys(result.metafile.inputs).sort()) {
    // Paths in the metafile are relative to absWorkingDir; anything outside the repository (there
    // should be nothing) would be a source the launcher cannot check, so refuse it.
    const rel = relative(root, resolve(root, file)).split("\\").join("/");
    if (rel.startsWith("..")) throw new Error(`${name} bundle: input outside the repository: ${file}`);
    // A package is represented by its package.json (its version): hashing its hundreds of files on
    // every start would cost tens of ms, and installs replace packages, they do not edit them.
    const key = packageJsonOf(rel) ?? rel;
    inputs[key] ??= sha256Of(join(root, key));
  }
  const requires = {};
  for (const pkg of externalPackages(result.metafile)) {
    const key = `node_modules/${pkg}/package.json`;
    // Dev-only packages load only on dev-only paths; pg-native is a probe that may find nothing.
    if (devOnly.includes(pkg) || !existsSync(join(root, key))) continue;
    requires[key] = sha256Of(join(root, key));
  }
  for (const asset of assets) {
    writeFileSync(join(staging, asset.as), readFileSync(join(root, asset.from)));
  }
  writeFileSync(
    join(staging, MANIFEST),
    `${JSON.stringify({ format: MANIFEST_FORMAT, entry: `${name}.mjs`, builder, inputs, requires }, null, 2)}\n`,
  );
  mkdirSync(dirname(outdir), { recursive: true });
  rmSync(outdir, { recursive: true, force: true });
  renameSync(staging, outdir);
  return "built";
}

/** Packages (not Node built-ins) the output imports from node_modules at run time. */
function externalPackages(metafile) {
  const names = new Set();
  for (const output of Object.values(metafile.outputs)) {
    for (const imported of output.imports) {
      if (!imported.external) continue;
      const path = imported.path.replace(/^node:/, "");
      const parts = path.split("/");
      const pkg = path.startsWith("@") ? parts.slice(0, 2).join("/") : parts[0];
      if (!builtinModules.includes(pkg)) names.add(pkg);
    }
  }
  return [...names].sort();
}

/**
 * Names of the packages package-lock.json installs for development only (no production copy).
 * `devOptional` counts as development: such a package is reached from production only through an
 * optional edge (the Prisma CLI and TypeScript as @prisma/client's optional peers, PGlite inside
 * the Prisma CLI's own dependencies), which nothing here follows at run time.
 */
function devOnlyPackages(root) {
  const lock = JSON.parse(readFileSync(join(root, "package-lock.json"), "utf8"));
  const dev = new Set();
  const prod = new Set();
  for (const [path, entry] of Object.entries(lock.packages ?? {})) {
    const at = path.lastIndexOf("node_modules/");
    if (at === -1) continue;
    const name = path.slice(at + "node_modules/".length);
    (entry.dev === true || entry.devOptional === true ? dev : prod).add(name);
  }
  return [...dev].filter((name) => !prod.has(name)).sort();
}

/** `node_modules/@scope/name/package.json` for a file inside that package (the innermost one). */
function packageJsonOf(rel) {
  const at = rel.lastIndexOf("node_modules/");
  if (at === -1) return undefined;
  const parts = rel.slice(at + "node_modules/".length).split("/");
  const name = parts[0].startsWith("@") ? parts.slice(0, 2).join("/") : parts[0];
  return `${rel.slice(0, at)}node_modules/${name}/package.json`;
}

function manifestOf(outdir) {
  try {
    return JSON.parse(readFileSync(join(outdir, MANIFEST), "utf8"));
  } catch {
    return undefined;
  }
}
