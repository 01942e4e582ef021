/** Types of scripts/sidecar-bundle.mjs for the TypeScript callers (benchmarks). */
export function buildSidecarBundle(options?: {
  root?: string;
  outdir?: string;
  force?: boolean;
}): Promise<"built" | "current">;
