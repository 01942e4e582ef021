// Which build of `gatehouse sidecar` may run: the esbuild bundle that scripts/sidecar-bundle.mjs
// writes (at `npm install`, and in the image build), or, when there is none or it no longer matches
// the sources, the TypeScript through tsx. Plain JavaScript with Node built-ins only: it runs before
// any loader is registered, in the production image too.
import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

/** Written last into the bundle's folder: the entry file and the SHA-256 of every source it holds. */
export const MANIFEST = "manifest.json";
export const MANIFEST_FORMAT = 1;

export function sha256Of(path) {
  return createHash("sha256").update(readFileSync(path)).digest("hex");
}

/**
 * The bundle's entry URL when `dir` holds a complete bundle built from exactly the files now under
 * `root` (sources and the package files bundled with them), else `{ reason }`. Every input is hashed
 * again, not compared by mtime: an edited, reverted, checked-out or copied file is judged by its
 * content, so a developer never runs code older than what they see, and an image whose files match
 * its bundle always uses it.
 */
export function currentSidecarBundle(root, dir) {
  const manifestPath = join(dir, MANIFEST);
  if (!existsSync(manifestPath)) return { reason: `no bundle at ${dir}` };
  let manifest;
  try {
    manifest = JSON.parse(readFileSync(manifestPath, "utf8"));
  } catch {
    return { reason: `unreadable ${manifestPath}` };
  }
  if (manifest?.format !== MANIFEST_FORMAT || typeof manifest.entry !== "string") {
    return { reason: `unknown bundle manifest format in ${manifestPath}` };
  }
  const entry = join(dir, manifest.entry);
  if (!existsSync(entry)) return { reason: `bundle entry ${entry} missing` };
  for (const [file, digest] of Object.entries(manifest.inputs ?? {})) {
    const path = join(root, file);
    if (!existsSync(path) || sha256Of(path) !== digest)
      return { reason: `${file} changed since the bundle was built` };
  }
  return { url: pathToFileURL(entry).href };
}
