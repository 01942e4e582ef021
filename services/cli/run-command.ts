import { SettingsError } from "../shared/settings/settings.ts";
import { type Command, EXIT_FAILED, EXIT_OK, EXIT_USAGE, UsageError } from "./command.ts";

/**
 * Runs one loaded command with the CLI's conventions: `--help`/`-h` print its usage, a UsageError
 * or SettingsError exits 2 with a one-line message, anything else exits 1 without a stack trace
 * (unless GATEHOUSE_DEBUG is set). Shared by `main` and the sidecar's bundled entry, so both
 * behave the same.
 */
export async function runCommand(command: Command, argv: string[]): Promise<number> {
  const name = command.name;
  if (argv.includes("--help") || argv.includes("-h")) {
    process.stdout.write(`${command.help?.(argv) ?? command.usage}\n`);
    return EXIT_OK;
  }
  try {
    return await command.run(argv);
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`gatehouse ${name}: ${err.message}\n\n${command.help?.(argv) ?? command.usage}\n`);
      return EXIT_USAGE;
    }
    if (err instanceof SettingsError) {
      process.stderr.write(`gatehouse ${name}: configuration error: ${err.message}\n`);
      return EXIT_USAGE;
    }
    const message = err instanceof Error ? err.message : String(err);
    process.stderr.write(`gatehouse ${name}: ${message}\n`);
    if (process.env.GATEHOUSE_DEBUG) console.error(err);
    return EXIT_FAILED;
  }
}
