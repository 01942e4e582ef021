import { mkdirSync } from "node:fs";
import { resolve } from "node:path";
import { migrate } from "../shared/database/index.ts";
import { type Command, EXIT_OK, parseFlags } from "./command.ts";

const usage = `Usage: gatehouse dev [--data DIR]

Runs Gatehouse on embedded defaults (PGlite, in-process revocation bus), no servers needed.

  --data DIR   where the embedded database lives (default .gatehouse/)`;

export const devCommand: Command = {
  name: "dev",
  summary: "Run everything on embedded defaults for local development (npm start)",
  usage,
  async run(argv) {
    const { values } = parseFlags(argv, { data: { type: "string" } });
    const dataDir = resolve(values.data ?? ".gatehouse");
    mkdirSync(dataDir, { recursive: true });
    const dbDir = resolve(dataDir, "pglite");
    const { applied } = await migrate({ kind: "pglite", dataDir: dbDir });
    process.stdout.write(
      [
        "Gatehouse dev",
        `  embedded database: ${dbDir} (${applied.length === 0 ? "up to date" : `applied ${applied.join(", ")}`})`,
        "  The token service and sidecar are not in this build yet, so there is nothing to serve;",
        "  the database is ready for them.",
        "",
      ].join("\n"),
    );
    return EXIT_OK;
  },
};
