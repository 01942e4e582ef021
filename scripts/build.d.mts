/** Types of scripts/build.mjs for the TypeScript callers (benchmarks). */
export function buildDist(options?: {
  root?: string;
  out?: string;
  revision?: string;
  only?: "cli" | "sidecar";
  force?: boolean;
}): Promise<{
  cli: "built" | "current" | "skipped";
  sidecar: "built" | "current" | "skipped";
  version: string;
  revision: string;
}>;
