import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { type Command, EXIT_OK, parseFlags, UsageError } from "./command.ts";

const usage = `Usage: gatehouse version   (or gatehouse --version)

Prints the package version and the build's source revision: the "revision" of dist/build-info.json
when the build wrote one, else the checkout's \`git rev-parse --short HEAD\`, else "unknown".`;

/** The directory of the nearest package.json above this module: the package root, in a checkout or an image. */
function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, "package.json"))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error("gatehouse: package.json not found above the CLI's sources");
    dir = parent;
  }
  return dir;
}

/** The build's revision: dist/build-info.json, else git in a checkout, else "unknown". */
function revisionAt(root: string): string {
  try {
    const info = JSON.parse(readFileSync(join(root, "dist", "build-info.json"), "utf8")) as {
      revision?: unknown;
    };
    if (typeof info.revision === "string" && info.revision !== "") return info.revision;
  } catch {
    // No build info: not a built image, or an older build. Ask git.
  }
  try {
    return execFileSync("git", ["rev-parse", "--short", "HEAD"], {
      cwd: root,
      encoding: "utf8",
      stdio: ["ignore", "pipe", "ignore"],
      timeout: 5000,
    }).trim();
  } catch {
    return "unknown";
  }
}

/** `gatehouse <version> (revision <rev>)`, e.g. `gatehouse 0.1.0 (revision 1d79a32)`. */
export function versionText(): string {
  const root = packageRoot();
  const { version } = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { version: string };
  return `gatehouse ${version} (revision ${revisionAt(root)})`;
}

export const versionCommand: Command = {
  name: "version",
  summary: "Print the version and the build's source revision",
  usage,
  async run(argv) {
    const { positionals } = parseFlags(argv, {});
    if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`);
    process.stdout.write(`${versionText()}\n`);
    return EXIT_OK;
  },
};
