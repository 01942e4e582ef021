// Which build of a `gatehouse` command may run: an esbuild bundle that scripts/bundle.mjs wrote
// (dist/sidecar at `npm install`; dist/cli and dist/sidecar at `npm run build` and in the images),
// or, in a checkout where there is none or it no longer matches the sources, the TypeScript through
// tsx. Plain JavaScript with Node built-ins only: it runs before any loader is registered, in the
// images too.
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
 * `root`, else `{ reason }`. Every input is hashed again, not compared by mtime: an edited, reverted,
 * checked-out or copied file is judged by its content, so a developer never runs code older than
 * what they see.
 *
 * `sourcesShipped: false` is the image's case: the sources and bundled packages are not there (the
 * bundle is all that ships), so an absent input is expected, but any input that is present must
 * still match; and the packages left external (`requires`) must be installed, as built against.
 */
export function currentBundle(root, dir, { sourcesShipped = true } = {}) {
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
    if (!existsSync(path)) {
      if (sourcesShipped) return { reason: `${file} changed since the bundle was built` };
    } else if (sha256Of(path) !== digest) return { reason: `${file} changed since the bundle was built` };
  }
  for (const [file, digest] of Object.entries(manifest.requires ?? {})) {
    const path = join(root, file);
    if (!existsSync(path)) return { reason: `${file} is missing (the bundle needs that package installed)` };
    if (sha256Of(path) !== digest) return { reason: `${file} changed since the bundle was built` };
  }
  return { url: pathToFileURL(entry).href };
}

/** {@link currentBundle} for the sidecar in a checkout. */
export function currentSidecarBundle(root, dir) {
  return currentBundle(root, dir);
}
