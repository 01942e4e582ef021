#!/usr/bin/env node
// Stages what one image's role needs from the build, under the paths it has in /app: the bundle of
// `npm run build` (dist/cli or dist/sidecar), dist/build-info.json, and node_modules holding only
// the packages the bundle left external (its manifest's `requires`) with their production
// dependencies, copied from the installed tree. Everything else the bundle holds already, so
// `npm ci --omit=dev` (which keeps @prisma/client's optional peers, the Prisma CLI and TypeScript)
// is not what ships. The Dockerfiles run it in their build stage; test/deploy/image-files.test.ts
// runs it the same way to measure and start the result.
//
// `node scripts/runtime-files.mjs token-service|sidecar OUT [--dist DIR]`
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { MANIFEST } from "../bin/sidecar-bundle.mjs";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");

/** The `prebuilds/` folder name of this machine's addons, as prebuild tooling names them. */
const THIS_PLATFORM = `${process.platform}-${process.arch}`;

/** Which bundle each image runs. */
const ROLES = { "token-service": "cli", sidecar: "sidecar" };

/**
 * Copies the runtime files of `role` into `out` (emptied first). `dist` is the build to take them
 * from (default <root>/dist). Returns the node_modules package folders copied, relative to `root`.
 */
function stageRuntimeFiles({ role, out, root = ROOT, dist = join(ROOT, "dist") }) {
  const bundle = ROLES[role];
  if (bundle === undefined)
    throw new Error(`runtime files: unknown role "${role}" (${Object.keys(ROLES).join(", ")})`);
  const manifest = JSON.parse(readFileSync(join(dist, bundle, MANIFEST), "utf8"));
  rmSync(out, { recursive: true, force: true });
  mkdirSync(join(out, "dist"), { recursive: true });
  cpSync(join(dist, bundle), join(out, "dist", bundle), { recursive: true });
  cpSync(join(dist, "build-info.json"), join(out, "dist", "build-info.json"));
  const packages = new Set();
  const visit = (dir) => {
    if (packages.has(dir)) return;
    packages.add(dir);
    const pkg = JSON.parse(readFileSync(join(root, dir, "package.json"), "utf8"));
    for (const name of Object.keys({ ...pkg.dependencies, ...pkg.optionalDependencies })) {
      const found = resolvePackage(root, dir, name);
      if (found !== undefined) visit(found);
      else if (!(name in (pkg.optionalDependencies ?? {})))
        throw new Error(`runtime files: ${dir} needs ${name}, which is not installed`);
    }
  };
  for (const file of Object.keys(manifest.requires ?? {})) visit(dirname(file));
  for (const dir of packages) {
    // Each package without its own nested node_modules (the ones it needs are visited themselves),
    // and of its prebuilt addons (sodium-native's `prebuilds/<platform>-<arch>`) only this platform's:
    // the build stage runs on the image's platform.
    cpSync(join(root, dir), join(out, dir), {
      recursive: true,
      dereference: true,
      filter: (src) => {
        const parts = relative(join(root, dir), src).split(/[\\/]/);
        if (parts.includes("node_modules")) return false;
        return !(parts[0] === "prebuilds" && parts.length > 1 && parts[1] !== THIS_PLATFORM);
      },
    });
  }
  return [...packages].sort();
}

/** Node's lookup: `<dir>/node_modules/<name>`, then in each enclosing node_modules up to `root`. */
function resolvePackage(root, fromDir, name) {
  for (let dir = fromDir; ; dir = dirname(dir)) {
    const candidate = join(dir === "." ? "" : dir, "node_modules", name);
    if (existsSync(join(root, candidate, "package.json"))) return candidate;
    if (dir === "." || dir === "") return undefined;
  }
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { values, positionals } = parseArgs({
    options: { dist: { type: "string" } },
    allowPositionals: true,
  });
  const [role, out] = positionals;
  if (role === undefined || out === undefined) {
    console.error("usage: node scripts/runtime-files.mjs token-service|sidecar OUT [--dist DIR]");
    process.exit(2);
  }
  const packages = stageRuntimeFiles({
    role,
    out: resolve(out),
    ...(values.dist ? { dist: resolve(values.dist) } : {}),
  });
  console.log(`runtime files: ${role} → ${out} (${packages.length} packages: ${packages.join(", ")})`);
}
