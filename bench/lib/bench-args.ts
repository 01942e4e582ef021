import { parseArgs } from "node:util";

/** A benchmark's flags: each name with its default, a number (seconds, counts, 0/1 switches) or a string. */
type ArgSpec = Record<string, number | string>;
type ParsedArgs<S extends ArgSpec> = { [K in keyof S]: S[K] extends number ? number : string };

/**
 * Parses `--name value` flags against `spec` with node:util's parseArgs: every benchmark takes its
 * flags the same way. A number flag must be a finite number ≥ 0 (0 is how `--peer 0` and `--warmup 0`
 * switch a part off). An unknown flag or a bad value prints the flags with their defaults and exits 2,
 * rather than falling back to a default and measuring something other than what was asked.
 * `npm run bench` passes its own flags (`--duration`, `--concurrency`) to every benchmark, so each
 * spec lists them even where they do not apply; its header says so.
 */
export function benchArgs<S extends ArgSpec>(
  usage: string,
  spec: S,
  argv = process.argv.slice(2),
): ParsedArgs<S> {
  const fail = (problem: string): never => {
    const flags = Object.entries(spec).map(([name, value]) => `  --${name} ${value}`);
    process.stderr.write(`${problem}\nusage: ${usage}\nflags (defaults):\n${flags.join("\n")}\n`);
    process.exit(2);
  };
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: Object.fromEntries(Object.keys(spec).map((name) => [name, { type: "string" as const }])),
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    return fail((err as Error).message);
  }
  const parsed: Record<string, number | string> = {};
  for (const [name, fallback] of Object.entries(spec)) {
    const given = values[name];
    if (typeof given !== "string") parsed[name] = fallback;
    else if (typeof fallback === "string") parsed[name] = given;
    else {
      const n = Number(given);
      if (given.trim() === "" || !Number.isFinite(n) || n < 0)
        fail(`--${name} must be a number ≥ 0, got "${given}"`);
      parsed[name] = n;
    }
  }
  return parsed as ParsedArgs<S>;
}
