import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { K8S, kustomizationDirs, REPO, readRepoFile } from "./deploy-files.ts";

const doc = readRepoFile("docs/operations.md");

/** Variables the admin CLI and the image's health check read, outside the server settings. */
const NOT_SERVER_SETTINGS = [
  "GATEHOUSE_SERVER",
  "GATEHOUSE_CLIENT_ID",
  "GATEHOUSE_CLIENT_SECRET",
  "GATEHOUSE_ASSERTION_FILE",
  "GATEHOUSE_OLD_MASTER_KEY",
  "GATEHOUSE_NEW_MASTER_KEY",
  "GATEHOUSE_HEALTHCHECK_URL",
  "GATEHOUSE_ADMIN_SERVER",
  "GATEHOUSE_TLS_CA",
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

  it("names every Kubernetes component and top-level kustomization in its layout table", () => {
    const layout = doc.slice(doc.indexOf("### Kubernetes layout"), doc.indexOf("### Sizing"));
    const components = readdirSync(join(K8S, "components")).map((c) => `components/${c}`);
    const topLevel = kustomizationDirs().filter((d) => !d.startsWith("overlays/") && !d.includes("/"));
    expect(components.length).toBeGreaterThanOrEqual(4);
    for (const dir of [...components, ...topLevel, "overlays/dev", "overlays/production"]) {
      expect(layout, dir).toContain(`\`deploy/k8s/${dir}\``);
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

  it("names every metric Gatehouse registers", () => {
    const root = join(REPO, "services");
    const files = (readdirSync(root, { recursive: true }) as string[]).filter(
      (f) => f.endsWith(".ts") && !f.startsWith("gen"),
    );
    const registered = new Set<string>();
    for (const f of files) {
      for (const m of readFileSync(join(root, f), "utf8").matchAll(/"(gatehouse_[a-z0-9_]+)"/g))
        registered.add(m[1]!);
    }
    expect(registered.size).toBeGreaterThan(20);
    const watch = doc.slice(doc.indexOf("## What to watch"));
    const missing = [...registered].filter((name) => !watch.includes(`\`${name}\``));
    expect(missing, 'metrics missing from "What to watch" in docs/operations.md').toEqual([]);
  });

  it("lists every audit actor the code writes", () => {
    const root = join(REPO, "services");
    const actors = new Set<string>();
    for (const f of readdirSync(root, { recursive: true }) as string[]) {
      if (!f.endsWith(".ts") || f.startsWith("gen")) continue;
      for (const m of readFileSync(join(root, f), "utf8").matchAll(/["`](system:[a-z-]+:?)/g))
        actors.add(m[1]!);
    }
    expect(actors).toContain("system:key-ring");
    const audit = doc.slice(doc.indexOf("## Audit log"), doc.indexOf("## What to watch"));
    const missing = [...actors].filter((actor) => !audit.includes(`\`${actor}`));
    expect(missing, "actors missing from the Audit log section of docs/operations.md").toEqual([]);
  });
});
