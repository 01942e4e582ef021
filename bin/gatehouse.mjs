#!/usr/bin/env node
// Entry point of the `gatehouse` command, in a checkout and in the images alike.
//
// GATEHOUSE_RUNTIME picks what runs:
// - `dist`: the compiled build of `npm run build` (dist/cli; dist/sidecar for `sidecar`), and
//   nothing else. The images set it. A missing build, or one that no longer matches the files beside
//   it (an edited source, a package other than the one it was built against), is refused with one
//   line and exit 1: an image never falls back to compiling TypeScript, which needs tsx (not
//   installed there) and costs seconds and ~50 MB.
// - `auto` (default, a checkout): the TypeScript sources through tsx's loader, so a fresh clone
//   needs nothing but `npm install`; except `sidecar`, which runs from dist/sidecar when that bundle
//   matches the sources (checked by content hash of every bundled input on each start, see
//   sidecar-bundle.mjs), so an edited checkout falls back to tsx and never runs stale code.
// - `tsx`: always the sources. `bundle`: the sidecar bundle or exit 1 (other commands through tsx).
// GATEHOUSE_DIST_DIR: where the build lives (default <repo>/dist); GATEHOUSE_BUNDLE_DIR: the
// sidecar bundle of `auto`/`bundle` (default <repo>/dist/sidecar).
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { setFlagsFromString } from "node:v8";
import { currentBundle, currentSidecarBundle } from "./sidecar-bundle.mjs";

const RUNTIMES = ["auto", "tsx", "bundle", "dist"];
const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const argv = process.argv.slice(2);
const runtime = process.env.GATEHOUSE_RUNTIME || "auto";

if (!RUNTIMES.includes(runtime)) {
  process.stderr.write(
    `gatehouse: GATEHOUSE_RUNTIME must be one of ${RUNTIMES.join(", ")}, not "${runtime}"\n`,
  );
  process.exit(2);
}

if (runtime === "dist") {
  const dist = process.env.GATEHOUSE_DIST_DIR || join(root, "dist");
  const role = argv[0] === "sidecar" ? "sidecar" : "cli";
  const found = existsSync(join(dist, "build-info.json"))
    ? currentBundle(root, join(dist, role), { sourcesShipped: false })
    : { reason: `no build at ${dist} (build-info.json missing)` };
  if (found.url === undefined) {
    process.stderr.write(
      `gatehouse: GATEHOUSE_RUNTIME=dist but ${found.reason}; run \`npm run build\` (or rebuild the image)\n`,
    );
    process.exit(1);
  }
  // Prisma's query compiler is WebAssembly; V8 optimising it with TurboFan costs ~20 MB of idle RSS
  // (README, "Runtime") for ORM queries that only serve cold paths: keep it on the baseline tier.
  // Set before any module compiles wasm; it affects nothing else.
  if (role === "cli") setFlagsFromString("--liftoff-only");
  const { main } = await import(found.url);
  process.exitCode = await main(role === "sidecar" ? argv.slice(1) : argv);
} else {
  let bundle;
  if (argv[0] === "sidecar" && runtime !== "tsx") {
    const found = currentSidecarBundle(
      root,
      process.env.GATEHOUSE_BUNDLE_DIR || join(root, "dist", "sidecar"),
    );
    if (found.url !== undefined) bundle = found.url;
    else if (runtime === "bundle") {
      process.stderr.write(`gatehouse sidecar: GATEHOUSE_RUNTIME=bundle but ${found.reason}\n`);
      process.exit(1);
    }
  }
  if (bundle !== undefined) {
    const { main } = await import(bundle);
    process.exitCode = await main(argv.slice(1));
  } else {
    const { register } = await import("tsx/esm/api");
    register();
    const { main } = await import("../services/cli/main.ts");
    process.exitCode = await main(argv);
  }
}
