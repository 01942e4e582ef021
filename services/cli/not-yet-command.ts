import { type Command, EXIT_FAILED } from "./command.ts";

/** A command whose component has not landed yet: says so plainly instead of failing obscurely. */
export function notYetCommand(name: string, summary: string, what: string): Command {
  return {
    name,
    summary: `${summary} (not yet available)`,
    usage: `Usage: gatehouse ${name}\n\n${summary}. Not yet available: ${what} has not landed.`,
    async run() {
      process.stderr.write(`gatehouse ${name}: not yet available — ${what} has not landed in this build.\n`);
      return EXIT_FAILED;
    },
  };
}
