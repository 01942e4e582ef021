import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestProject } from "vitest/node";

declare module "vitest" {
  export interface ProvidedContext {
    /** Where every scenario of this run writes process logs (`logs/`) and the secrets it saw (`secrets/`). */
    reliabilityRunDir: string;
  }
}

/**
 * Makes one directory for the whole reliability run: scenarios write the output of every process they
 * start and every token or secret they see into it, and the log check reads it all at the end.
 * Removed afterwards unless GATEHOUSE_KEEP_RELIABILITY_LOGS=1 (then its path is printed).
 */
export default function setup(project: TestProject): () => void {
  const dir = mkdtempSync(join(tmpdir(), "gatehouse-reliability-"));
  mkdirSync(join(dir, "logs"));
  mkdirSync(join(dir, "secrets"));
  project.provide("reliabilityRunDir", dir);
  return () => {
    if (process.env.GATEHOUSE_KEEP_RELIABILITY_LOGS === "1") {
      console.log(`reliability logs kept in ${dir}`);
      return;
    }
    rmSync(dir, { recursive: true, force: true });
  };
}
