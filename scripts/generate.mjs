#!/usr/bin/env node
// Generates the code a fresh clone needs before it can type-check or run: protobuf-es schemas from
// proto/ (buf, local plugin only) and the Prisma client from prisma/schema.prisma; then the bundle
// `gatehouse sidecar` runs from (scripts/sidecar-bundle.mjs). Runs on `npm install` (postinstall)
// and skips work whose inputs have not changed since the last run.
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const force = process.argv.includes("--force");
const bin = (name) => join(root, "node_modules", ".bin", name);

function filesUnder(dir) {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true })
    .map((f) => join(dir, String(f)))
    .filter((f) => statSync(f).isFile())
    .sort();
}

function digest(files) {
  const h = createHash("sha256");
  for (const f of files) h.update(relative(root, f)).update(readFileSync(f));
  return h.digest("hex");
}

function step(name, inputs, outputDir, command, args, env = {}) {
  const stamp = join(outputDir, ".inputs-sha256");
  const want = digest(inputs);
  if (!force && existsSync(stamp) && readFileSync(stamp, "utf8") === want) return;
  const r = spawnSync(command, args, { cwd: root, stdio: "inherit", env: { ...process.env, ...env } });
  if (r.status !== 0) {
    console.error(`generate: ${name} failed (exit ${r.status ?? r.signal})`);
    process.exit(1);
  }
  mkdirSync(outputDir, { recursive: true });
  writeFileSync(stamp, want);
  console.log(`generate: ${name} done`);
}

// Without devDependencies (production image) there is no buf: the generated code was copied in by
// the build.
if (existsSync(bin("buf"))) {
  step(
    "protobuf (buf generate)",
    [...filesUnder(join(root, "proto")), join(root, "buf.yaml"), join(root, "buf.gen.yaml")].filter(
      existsSync,
    ),
    join(root, "services", "gen", "proto"),
    bin("buf"),
    ["generate"],
  );

  step(
    "prisma client (prisma generate)",
    [join(root, "prisma", "schema.prisma"), join(root, "prisma.config.ts")].filter(existsSync),
    join(root, "services", "gen", "prisma"),
    bin("prisma"),
    ["generate"],
    // `prisma generate` only checks that a schema engine exists; it does not run it. Pointing the
    // variable at any executable stops it from trying to download one, which fails offline.
    {
      PRISMA_SCHEMA_ENGINE_BINARY: process.execPath,
      PRISMA_HIDE_UPDATE_MESSAGE: "1",
      CHECKPOINT_DISABLE: "1",
    },
  );
}

// The sidecar bundle includes generated code, so it comes last. Its own check skips it when every
// bundled source is unchanged (a content hash per file, the same check bin/gatehouse.mjs makes).
// It is an optimisation: when it cannot be built (sources not copied yet, as in the image's
// dependency layer; a source mid-edit that does not compile) the launcher runs the sidecar through
// tsx, so this warns rather than failing the install. The image build runs it on its own, strictly.
if (
  existsSync(join(root, "services", "cli", "sidecar-entry.ts")) &&
  existsSync(join(root, "services", "gen", "proto"))
) {
  try {
    const { buildSidecarBundle } = await import("./sidecar-bundle.mjs");
    if ((await buildSidecarBundle({ force })) === "built")
      console.log("generate: sidecar bundle (esbuild) done");
  } catch (err) {
    console.warn(
      `generate: sidecar bundle skipped, \`gatehouse sidecar\` will run through tsx: ${err.message}`,
    );
  }
}
