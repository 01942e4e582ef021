#!/usr/bin/env node
// `npm run build`: the compiled runtime every role runs from in production (bin/gatehouse.mjs with
// GATEHOUSE_RUNTIME=dist, as the images set it):
//   dist/cli/       the whole `gatehouse` command (serve, migrate, dev, the admin CLI), one entry
//                   plus a chunk per command, loaded when that command runs
//   dist/sidecar/   `gatehouse sidecar` alone, without Prisma or the token service
//   dist/build-info.json  { version, revision } of this build
// Other folders under dist/ are left alone (other builds may write there).
//
// `node scripts/build.mjs [--out DIR] [--revision SHA] [--only cli|sidecar] [--force]`: each image
// builds only the bundle it ships. The revision defaults to $REVISION, then to `git rev-parse HEAD`,
// then to "unknown" (an image build has no .git).
import { spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { currentBundle, sha256Of } from "../bin/sidecar-bundle.mjs";
import { buildBundle } from "./bundle.mjs";
import { buildSidecarBundle } from "./sidecar-bundle.mjs";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");

/** Builds dist/ under `out`; returns what happened to each part. */
export async function buildDist({
  root = ROOT,
  out = join(ROOT, "dist"),
  revision,
  only,
  force = false,
} = {}) {
  const skip = async () => "skipped";
  const cli = await (only === "sidecar"
    ? skip()
    : buildBundle({
        root,
        entry: "services/cli/main.ts",
        name: "main",
        outdir: join(out, "cli"),
        force,
        builderId: sha256Of(fileURLToPath(import.meta.url)),
        isCurrent: (dir) => currentBundle(root, dir).url !== undefined,
        // `gatehouse dev` reads and watches its demo policy beside its own module.
        assets: [{ from: "services/dev/demo-policy.yaml", as: "demo-policy.yaml" }],
      }));
  const sidecar = await (only === "cli"
    ? skip()
    : buildSidecarBundle({ root, outdir: join(out, "sidecar"), force }));
  const { version } = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
  mkdirSync(out, { recursive: true });
  const info = { version, revision: revision ?? gitRevision(root) };
  writeFileSync(join(out, "build-info.json"), `${JSON.stringify(info, null, 2)}\n`);
  return { cli, sidecar, ...info };
}

function gitRevision(root) {
  if (process.env.REVISION) return process.env.REVISION;
  const git = spawnSync("git", ["rev-parse", "HEAD"], { cwd: root, encoding: "utf8" });
  return git.status === 0 ? git.stdout.trim() : "unknown";
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({
    options: {
      out: { type: "string" },
      revision: { type: "string" },
      only: { type: "string" },
      force: { type: "boolean", default: false },
    },
  });
  if (values.only !== undefined && !["cli", "sidecar"].includes(values.only)) {
    console.error(`build: --only takes cli or sidecar, not "${values.only}"`);
    process.exit(2);
  }
  const result = await buildDist({
    force: values.force,
    only: values.only,
    ...(values.out ? { out: resolve(values.out) } : {}),
    ...(values.revision ? { revision: values.revision } : {}),
  });
  console.log(
    `build: dist/cli ${result.cli}, dist/sidecar ${result.sidecar}, version ${result.version}, revision ${result.revision}`,
  );
}
