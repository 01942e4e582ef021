#!/usr/bin/env node
// Builds the bundle `gatehouse sidecar` runs from (see bin/gatehouse.mjs): services/cli/sidecar-entry.ts
// and everything it imports, generated protobuf code and packages included, in one ESM file plus
// lazily loaded chunks (ioredis and the stream follower load only with REDIS_URL). Bundling the
// packages too saves another 8 MB of idle RSS (fewer module records, unused code dropped) over
// leaving them to node_modules. pino stays external (scripts/bundle.mjs says why). The manifest
// records every input, node_modules files included, so an upgraded package makes the bundle stale
// like an edited source does.
//
// `node scripts/sidecar-bundle.mjs [--force] [--out DIR]`; scripts/generate.mjs calls it at install,
// scripts/build.mjs (`npm run build`) with the rest of dist/.
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { currentSidecarBundle, sha256Of } from "../bin/sidecar-bundle.mjs";
import { buildBundle } from "./bundle.mjs";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const ENTRY = "services/cli/sidecar-entry.ts";

/**
 * Writes the bundle into `outdir` unless it is already current (same sources, same builder).
 * Returns "built" or "current".
 */
export function buildSidecarBundle({
  root = ROOT,
  outdir = join(ROOT, "dist", "sidecar"),
  force = false,
} = {}) {
  return buildBundle({
    root,
    entry: ENTRY,
    name: "sidecar",
    outdir,
    force,
    builderId: sha256Of(fileURLToPath(import.meta.url)),
    isCurrent: (dir) => currentSidecarBundle(root, dir).url !== undefined,
  });
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
