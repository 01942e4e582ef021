#!/usr/bin/env node
// Builds the bundle `gatehouse sidecar` runs from (see bin/gatehouse.mjs): services/cli/sidecar-entry.ts
// and everything it imports, generated protobuf code and packages included, in one ESM file plus
// lazily loaded chunks (ioredis and the stream follower load only with REDIS_URL). Bundling the
// packages too saves another 8 MB of idle RSS (fewer module records, unused code dropped) over
// leaving them to node_modules. pino stays external: its transport worker (pino-pretty, loaded by
// name) runs from files of its own. The manifest records every input, node_modules files included,
// so an upgraded package makes the bundle stale like an edited source does.
//
// `node scripts/sidecar-bundle.mjs [--force] [--out DIR]`; scripts/generate.mjs calls it at install.
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { currentSidecarBundle, MANIFEST, MANIFEST_FORMAT, sha256Of } from "../bin/sidecar-bundle.mjs";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const ENTRY = "services/cli/sidecar-entry.ts";

/**
 * Writes the bundle into `outdir` unless it is already current (same sources, same builder).
 * Returns "built" or "current". The new bundle is built beside the old one and renamed into place,
 * so a sidecar starting meanwhile sees the old one or the new one, never half of one.
 */
export async function buildSidecarBundle({
  root = ROOT,
  outdir = join(ROOT, "dist", "sidecar"),
  force = false,
} = {}) {
  const { build, version } = await import("esbuild");
  const builder = `${sha256Of(fileURLToPath(import.meta.url))} esbuild ${version}`;
  if (!force && currentSidecarBundle(root, outdir).url !== undefined && manifestBuilder(outdir) === builder) {
    return "current";
  }
  const staging = `${outdir}.tmp-${process.pid}`;
  rmSync(staging, { recursive: true, force: true });
  const result = await build({
    absWorkingDir: root,
    entryPoints: { sidecar: ENTRY },
    outdir: staging,
    outExtension: { ".js": ".mjs" },
    chunkNames: "chunks/[name]-[hash]",
    bundle: true,
    splitting: true,
    format: "esm",
    platform: "node",
    target: "node20.19",
    // Dev-only packages a bundled one merely probes for (debug tries supports-color) stay
    // external: bundled, they would make the bundle differ from, and look stale in, an image
    // installed without them.
    external: ["pino", "pino-pretty", ...devOnlyPackages(root)],
    // Bundled CommonJS packages (ioredis, prom-client) call require() for Node built-ins.
    banner: {
      js: 'import { createRequire as __gatehouseRequire } from "node:module"; const require = __gatehouseRequire(import.meta.url);',
    },
    metafile: true,
    logLevel: "warning",
  });
  const inputs = {};
  for (const file of Object.keys(result.metafile.inputs).sort()) {
    // Paths in the metafile are relative to absWorkingDir; anything outside the repository (there
    // should be nothing) would be a source the launcher cannot check, so refuse it.
    const rel = relative(root, resolve(root, file)).split("\\").join("/");
    if (rel.startsWith("..")) throw new Error(`sidecar bundle: input outside the repository: ${file}`);
    // A package is represented by its package.json (its version): hashing its hundreds of files on
    // every start would cost tens of ms, and installs replace packages, they do not edit them.
    const key = packageJsonOf(rel) ?? rel;
    inputs[key] ??= sha256Of(join(root, key));
  }
  writeFileSync(
    join(staging, MANIFEST),
    `${JSON.stringify({ format: MANIFEST_FORMAT, entry: "sidecar.mjs", builder, inputs }, null, 2)}\n`,
  );
  mkdirSync(dirname(outdir), { recursive: true });
  rmSync(outdir, { recursive: true, force: true });
  renameSync(staging, outdir);
  return "built";
}

/** Names of the packages package-lock.json installs for development only (no production copy). */
export function devOnlyPackages(root) {
  const lock = JSON.parse(readFileSync(join(root, "package-lock.json"), "utf8"));
  const dev = new Set();
  const prod = new Set();
  for (const [path, entry] of Object.entries(lock.packages ?? {})) {
    const at = path.lastIndexOf("node_modules/");
    if (at === -1) continue;
    const name = path.slice(at + "node_modules/".length);
    (entry.dev === true ? dev : prod).add(name);
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

function manifestBuilder(outdir) {
  try {
    return JSON.parse(readFileSync(join(outdir, MANIFEST), "utf8")).builder;
  } catch {
    return undefined;
  }
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const out = args.includes("--out") ? resolve(args[args.indexOf("--out") + 1]) : undefined;
  if (!existsSync(join(ROOT, ENTRY))) {
    console.error(`sidecar bundle: ${ENTRY} not found`);
    process.exit(1);
  }
  const outcome = await buildSidecarBundle({
    force: args.includes("--force"),
    ...(out ? { outdir: out } : {}),
  });
  console.log(`sidecar bundle: ${outcome}`);
}
