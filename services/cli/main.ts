import { type Command, EXIT_OK, EXIT_USAGE } from "./command.ts";
import { runCommand } from "./run-command.ts";

/**
 * Each command's module loads only when that command runs: importing all of them (the token
 * service, the sidecar, the database layer) costs seconds, which every `gatehouse keys list` would
 * otherwise pay.
 */
const commands: { name: string; load: () => Promise<Command> }[] = [
  { name: "serve", load: async () => (await import("./serve-command.ts")).serveCommand },
  { name: "sidecar", load: async () => (await import("./sidecar-command.ts")).sidecarCommand },
  { name: "dev", load: async () => (await import("./dev-command.ts")).devCommand },
  { name: "migrate", load: async () => (await import("./migrate-command.ts")).migrateCommand },
  { name: "keys", load: async () => (await import("./keys-command.ts")).keysCommand },
  { name: "clients", load: async () => (await import("./clients-command.ts")).clientsCommand },
  { name: "sessions", load: async () => (await import("./sessions-command.ts")).sessionsCommand },
  { name: "audit", load: async () => (await import("./audit-command.ts")).auditCommand },
  { name: "token", load: async () => (await import("./token-command.ts")).tokenCommand },
  { name: "janitor", load: async () => (await import("./janitor-command.ts")).janitorCommand },
  { name: "version", load: async () => (await import("./version-command.ts")).versionCommand },
];

async function help(): Promise<string> {
  const loaded = await Promise.all(commands.map((c) => c.load()));
  const width = Math.max(...loaded.map((c) => c.name.length));
  return [
    "gatehouse — token service and sidecar verifier for microservice platforms",
    "",
    "Usage: gatehouse <command> [flags]",
    "",
    "Commands:",
    ...loaded.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    "",
    "Run `gatehouse <command> --help` for a command's flags, `gatehouse --version` for the version.",
    "Exit codes: 0 ok, 1 failed, 2 usage.",
  ].join("\n");
}

/** Runs one CLI invocation and returns its exit code; never throws, never prints a stack trace. */
export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === "--help" || name === "-h" || name === "help") {
    process.stdout.write(`${await help()}\n`);
    return name === undefined ? EXIT_USAGE : EXIT_OK;
  }
  const entry = commands.find((c) => c.name === (name === "--version" || name === "-V" ? "version" : name));
  if (!entry) {
    process.stderr.write(`gatehouse: unknown command "${name}"\n\n${await help()}\n`);
    return EXIT_USAGE;
  }
  return runCommand(await entry.load(), rest);
}
