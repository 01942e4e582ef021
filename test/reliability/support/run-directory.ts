import { appendFileSync, mkdirSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { inject } from "vitest";

let fallback: string | undefined;

/**
 * The run directory made by run-directory-setup.ts. A file started without that setup (someone ran
 * it with another config) gets a private temp directory instead, so scenarios still work alone.
 */
function runDirectory(): string {
  const provided = inject("reliabilityRunDir");
  if (provided) return provided;
  if (!fallback) {
    fallback = mkdtempSync(join(tmpdir(), "gatehouse-reliability-"));
    mkdirSync(join(fallback, "logs"));
    mkdirSync(join(fallback, "secrets"));
  }
  return fallback;
}

export const logsDirectory = () => join(runDirectory(), "logs");
export const secretsDirectory = () => join(runDirectory(), "secrets");

const pending = new Set<string>();
const written = new Set<string>();

/**
 * Remembers tokens and secrets this run handled (access tokens, refresh tokens, client secrets, the
 * master key) so the log check can look for them in every captured log. Written out by
 * {@link flushSecrets}, which scenarios call in `afterAll` and which also runs when the worker exits.
 */
export function rememberSecrets(...values: (string | undefined | null)[]): void {
  for (const v of values) if (v && !written.has(v)) pending.add(v);
}

export function flushSecrets(): void {
  if (pending.size === 0) return;
  const file = join(secretsDirectory(), `secrets-${process.pid}.txt`);
  appendFileSync(file, `${[...pending].join("\n")}\n`, { mode: 0o600 });
  for (const v of pending) written.add(v);
  pending.clear();
}

process.once("exit", () => {
  try {
    flushSecrets();
  } catch {
    // The run directory may be gone already; nothing left to protect.
  }
});
