import { type Command, UsageError } from "./command.ts";

/** One verb of a command group, e.g. `activate` in `gatehouse keys activate`. */
export interface Subcommand {
  name: string;
  summary: string;
  /** Full usage text, starting with `Usage: gatehouse <group> <name> ...`. */
  usage: string;
  run(argv: string[]): Promise<number>;
}

/** `gatehouse <name> <subcommand> [flags]`: dispatches to a subcommand; `--help` shows the right usage. */
export function commandGroup(name: string, summary: string, subcommands: readonly Subcommand[]): Command {
  const width = Math.max(...subcommands.map((s) => s.name.length));
  const usage = [
    `Usage: gatehouse ${name} <subcommand> [flags]`,
    "",
    `${summary}.`,
    "",
    "Subcommands:",
    ...subcommands.map((s) => `  ${s.name.padEnd(width)}  ${s.summary}`),
    "",
    `Run \`gatehouse ${name} <subcommand> --help\` for its flags. Exit codes: 0 ok, 1 failed, 2 usage.`,
  ].join("\n");
  const find = (argv: readonly string[]) => subcommands.find((s) => s.name === argv[0]);
  return {
    name,
    summary,
    usage,
    help: (argv) => find(argv)?.usage ?? usage,
    async run(argv) {
      const [verb, ...rest] = argv;
      if (verb === undefined) throw new UsageError("missing subcommand");
      const sub = find(argv);
      if (!sub) throw new UsageError(`unknown subcommand "${verb}"`);
      return sub.run(rest);
    },
  };
}

/** Exactly the positional arguments named (for the error message), in order. */
export function positionalArgs(positionals: string[], names: readonly string[]): string[] {
  if (positionals.length < names.length) throw new UsageError(`missing ${names[positionals.length]}`);
  if (positionals.length > names.length)
    throw new UsageError(`unexpected argument "${positionals[names.length]}"`);
  return positionals;
}
