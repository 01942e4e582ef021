import { type ParseArgsConfig, parseArgs } from "node:util";
import { flagName, type SettingsSpec } from "../shared/settings/settings.ts";

/** Exit codes every subcommand keeps: scripts rely on them. */
export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;

export interface Command {
  name: string;
  summary: string;
  usage: string;
  /** Help for these arguments when it depends on them (a group's subcommand); default `usage`. */
  help?(argv: string[]): string;
  run(argv: string[]): Promise<number>;
}

/** A wrong flag or argument: printed with the command's usage, exit code 2. */
export class UsageError extends Error {
  override readonly name = "UsageError";
}

export function parseFlags<T extends NonNullable<ParseArgsConfig["options"]>>(argv: string[], options: T) {
  try {
    return parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (err) {
    const message = (err as Error).message;
    // Key ids are RFC 7638 thumbprints (base64url), so one in 64 starts with '-' and reads as flags.
    const dashed = argv.find((a) => /^-[^-]/.test(a) && a.length > 2);
    throw new UsageError(
      dashed === undefined
        ? message
        : `${message} (an argument starting with '-' goes after --: … -- ${dashed})`,
    );
  }
}

/**
 * The flags of a command whose flags are its settings (serve, sidecar): `--name value`,
 * `--name=value`, or a bare `--name` for true, as raw strings for loadSettings. A flag that names
 * no setting, or an argument that is no flag, is a usage error: a misspelt `--isuer` must not
 * start a service with the issuer it meant to change.
 */
export function settingFlags(argv: string[], spec: SettingsSpec): Record<string, string> {
  const known = new Set(Object.values(spec).map(flagName));
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith("--")) throw new UsageError(`unexpected argument "${arg}"`);
    const eq = arg.indexOf("=");
    const name = eq === -1 ? arg.slice(2) : arg.slice(2, eq);
    if (!known.has(name)) throw new UsageError(`unknown flag --${name}`);
    if (eq === -1 && argv[i + 1] !== undefined && !argv[i + 1]!.startsWith("--")) i++;
  }
  return rawFlags(argv);
}

/** Flags given as --name value, as raw strings, for loadSettings (unknown flags are kept for it to ignore). */
export function rawFlags(argv: string[]): Record<string, string> {
  const flags: Record<string, string> = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith("--")) continue;
    const eq = arg.indexOf("=");
    if (eq !== -1) flags[arg.slice(2, eq)] = arg.slice(eq + 1);
    else if (argv[i + 1] !== undefined && !argv[i + 1]!.startsWith("--")) flags[arg.slice(2)] = argv[++i]!;
    else flags[arg.slice(2)] = "true";
  }
  return flags;
}
