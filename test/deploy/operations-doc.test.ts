import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { REPO, readRepoFile } from "./deploy-files.ts";

const doc = readRepoFile("docs/operations.md");

/** Variables the admin CLI and the image's health check read, outside the server settings. */
const NOT_SERVER_SETTINGS = [
  "GATEHOUSE_CLIENT_ID",
  "GATEHOUSE_CLIENT_SECRET",
  "GATEHOUSE_ASSERTION_FILE",
  "GATEHOUSE_OLD_MASTER_KEY",
  "GATEHOUSE_NEW_MASTER_KEY",
  "GATEHOUSE_HEALTHCHECK_URL",
];

describe("docs/operations.md stays true to the code and the deploy files", () => {
  it("names only settings that exist (docs/configuration.md is generated from the code)", () => {
    const reference = readRepoFile("docs/configuration.md");
    const named = new Set(doc.match(/\bGATEHOUSE_[A-Z_]+\b/g));
    expect(named.size).toBeGreaterThan(5);
    for (const name of named) {
      if (!NOT_SERVER_SETTINGS.includes(name)) expect(reference, name).toContain(`\`${name}\``);
    }
  });

  it("points at deploy files that exist", () => {
    const paths = new Set(doc.match(/deploy\/[\w./<>-]+/g));
    for (const path of paths) {
      const concrete = path.replace("<env>", "production").replace(/[.)]+$/, "");
      expect(existsSync(join(REPO, concrete)), path).toBe(true);
    }
  });

  it("names the metrics the token service registers", () => {
    const sources = (readdirSync(join(REPO, "services/shared"), { recursive: true }) as string[])
      .filter((f) => f.endsWith(".ts"))
      .map((f) => readFileSync(join(REPO, "services/shared", f), "utf8"))
      .join("\n");
    for (const metric of ["gatehouse_rpc_duration_seconds", "gatehouse_rpc_errors_total"]) {
      expect(doc).toContain(metric);
      expect(sources).toContain(`"${metric}"`);
    }
  });
});
