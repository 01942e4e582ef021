#!/usr/bin/env node
// Entry point of the `gatehouse` command. Sources are TypeScript run through tsx's loader, so a
// fresh clone needs nothing but `npm install`.
//
// `gatehouse sidecar` runs from an esbuild bundle instead when one matching the sources is present
// (dist/sidecar, built by scripts/sidecar-bundle.mjs at `npm install` and in the image): tsx's loader
// and on-the-fly compilation cost the sidecar about 50 MB of its 80 MB budget and most of its start
// time. "Matching" is checked by content hash of every bundled source on each start (see
// sidecar-bundle.mjs), so an edited checkout silently falls back to tsx and never runs stale code.
// Only the sidecar is bundled: the other commands locate migrations and wasm next to their sources
// and start rarely, so tsx costs them nothing that matters.
//
// GATEHOUSE_RUNTIME: `auto` (default), `tsx` (never the bundle), `bundle` (the bundle or exit 1).
// GATEHOUSE_BUNDLE_DIR: where the sidecar bundle lives (default <repo>/dist/sidecar).
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { currentSidecarBundle } from "./sidecar-bundle.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const argv = process.argv.slice(2);
const runtime = process.env.GATEHOUSE_RUNTIME ?? "auto";

let bundle;
if (argv[0] === "sidecar" && runtime !== "tsx") {
  const found = currentSidecarBundle(root, process.env.GATEHOUSE_BUNDLE_DIR || join(root, "dist", "sidecar"));
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
