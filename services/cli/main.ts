import { ConfigError } from "../shared/config/index.ts";
import { type Command, EXIT_FAILED, EXIT_OK, EXIT_USAGE, UsageError } from "./command.ts";
import { devCommand } from "./dev-command.ts";
import { migrateCommand } from "./migrate-command.ts";
import { notYetCommand } from "./not-yet-command.ts";
import { serveCommand } from "./serve-command.ts";

const commands: Command[] = [
  serveCommand,
  notYetCommand(
    "sidecar",
    "Run the sidecar verifier beside an app (:7401 proxy, :7402 control)",
    "the sidecar (issue #5)",
  ),
  devCommand,
  migrateCommand,
];

function help(): string {
  const width = Math.max(...commands.map((c) => c.name.length));
  return [
    "gatehouse — token service and sidecar verifier for microservice platforms",
    "",
    "Usage: gatehouse <command> [flags]",
    "",
    "Commands:",
    ...commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    "",
    "Run `gatehouse <command> --help` for a command's flags. Exit codes: 0 ok, 1 failed, 2 usage.",
  ].join("\n");
}

/** Runs one CLI invocation and returns its exit code; never throws, never prints a stack trace. */
export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === "--help" || name === "-h" || name === "help") {
    process.stdout.write(`${help()}\n`);
    return name === undefined ? EXIT_USAGE : EXIT_OK;
  }
  const command = commands.find((c) => c.name === name);
  if (!command) {
    process.stderr.write(`gatehouse: unknown command "${name}"\n\n${help()}\n`);
    return EXIT_USAGE;
  }
  if (rest.includes("--help") || rest.includes("-h")) {
    process.stdout.write(`${command.usage}\n`);
    return EXIT_OK;
  }
  try {
    return await command.run(rest);
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`gatehouse ${name}: ${err.message}\n\n${command.usage}\n`);
      return EXIT_USAGE;
    }
    if (err instanceof ConfigError) {
      process.stderr.write(`gatehouse ${name}: configuration error: ${err.message}\n`);
      return EXIT_USAGE;
    }
    const message = err instanceof Error ? err.message : String(err);
    process.stderr.write(`gatehouse ${name}: ${message}\n`);
    if (process.env.GATEHOUSE_DEBUG) console.error(err);
    return EXIT_FAILED;
  }
}
