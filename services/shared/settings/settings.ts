import type { z } from "zod";

/**
 * Declarative configuration: each component lists its settings once (environment variable, flag,
 * default, schema, description). The same list parses start-up input and renders the configuration
 * reference, so documentation and code cannot drift.
 */

export interface Setting<T> {
  /** Environment variable, e.g. `GATEHOUSE_ISSUER`. */
  env: string;
  /** Command-line flag without dashes; defaults to the env name in kebab case without `GATEHOUSE_`. */
  flag?: string;
  description: string;
  /** Raw default as a user would write it; absent means required unless `optional`. */
  default?: string;
  optional?: boolean;
  /** Documented as secret; its value is never echoed in errors. */
  secret?: boolean;
  schema: z.ZodType<T, string>;
}

export type SettingsSpec = Record<string, Setting<unknown>>;

type ValueOf<S> = S extends Setting<infer T> ? T : never;

export type SettingsOf<S extends SettingsSpec> = {
  [K in keyof S]: NonNullable<S[K]["optional"]> extends true ? ValueOf<S[K]> | undefined : ValueOf<S[K]>;
};

/** Identity helper that keeps the literal type of `optional` for {@link SettingsOf}. */
export function setting<T, const O extends boolean = false>(
  s: Setting<T> & { optional?: O },
): Setting<T> & { optional?: O } {
  return s;
}

/** A bad or missing value: its message is the one line an operator needs. */
export class SettingsError extends Error {
  override readonly name = "SettingsError";
  constructor(
    readonly variable: string,
    detail: string,
  ) {
    super(`${variable}: ${detail}`);
  }
}

export function flagName(s: Setting<unknown>): string {
  return (
    s.flag ??
    s.env
      .replace(/^GATEHOUSE_/, "")
      .toLowerCase()
      .replace(/_/g, "-")
  );
}

export interface LoadInput {
  env?: Record<string, string | undefined>;
  /** Flags already split into name → raw value; a flag wins over the environment. */
  flags?: Record<string, string | undefined>;
}

/** Parses and validates every setting once; the first bad or missing value throws {@link SettingsError}. */
export function loadSettings<S extends SettingsSpec>(spec: S, input: LoadInput = {}): SettingsOf<S> {
  const env = input.env ?? process.env;
  const flags = input.flags ?? {};
  const out: Record<string, unknown> = {};
  for (const [key, s] of Object.entries(spec)) {
    const flag = flagName(s);
    const fromFlag = flags[flag];
    const fromEnv = env[s.env] === "" ? undefined : env[s.env];
    const raw = fromFlag ?? fromEnv ?? s.default;
    if (raw === undefined) {
      if (s.optional) {
        out[key] = undefined;
        continue;
      }
      throw new SettingsError(s.env, `required but not set: ${s.description}`);
    }
    const result = s.schema.safeParse(raw);
    if (!result.success) {
      const name =
        fromFlag !== undefined ? `--${flag}` : fromEnv !== undefined ? s.env : `${s.env} (default)`;
      const detail = result.error.issues[0]?.message ?? "invalid value";
      throw new SettingsError(name, s.secret ? detail : `${detail}, got "${truncate(raw)}"`);
    }
    out[key] = result.data;
  }
  return out as SettingsOf<S>;
}

function truncate(s: string): string {
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

/** Markdown table of a component's settings, for the configuration reference. */
export function renderSettingsTable(spec: SettingsSpec): string {
  const rows = Object.values(spec).map((s) => {
    const def = s.default !== undefined ? `\`${s.default}\`` : s.optional ? "unset" : "**required**";
    const desc = s.description.replace(/\|/g, "\\|");
    return `| \`${s.env}\` | \`--${flagName(s)}\` | ${def} | ${desc}${s.secret ? " (secret)" : ""} |`;
  });
  return ["| variable | flag | default | meaning |", "| --- | --- | --- | --- |", ...rows].join("\n");
}
