import { runCommand } from "./run-command.ts";
import { sidecarCommand } from "./sidecar-command.ts";

/**
 * `gatehouse sidecar` on its own: the entry point of the esbuild bundle (scripts/sidecar-bundle.mjs)
 * that bin/gatehouse.mjs runs instead of the TypeScript sources. Importing only the sidecar's code
 * path keeps the bundle free of Prisma and the token service.
 */
export function main(argv: string[]): Promise<number> {
  return runCommand(sidecarCommand, argv);
}
