/** Paths and loaders the deploy tests share. */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parse, parseAllDocuments } from "yaml";
import { type KubeObject, loadKustomization, renderKustomization } from "./render-kustomize.ts";

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
export const DEPLOY = join(REPO, "deploy");
export const K8S = join(DEPLOY, "k8s");

export function readRepoFile(path: string): string {
  return readFileSync(join(REPO, path), "utf8");
}

/** A YAML file with merge keys (`<<: *anchor`) resolved, as Compose reads it. */
export function readYaml(path: string): unknown {
  return parse(readRepoFile(path), { merge: true });
}

export function readYamlDocuments(path: string): KubeObject[] {
  return parseAllDocuments(readRepoFile(path)).map((d) => d.toJS() as KubeObject);
}

/** Every kustomization under deploy/k8s that renders on its own (Components do not), relative to K8S. */
export function kustomizationDirs(): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    if (existsSync(join(dir, "kustomization.yaml")) && loadKustomization(dir).kind === "Kustomization") {
      out.push(relative(K8S, dir));
    }
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (entry.isDirectory()) walk(join(dir, entry.name));
    }
  };
  walk(K8S);
  return out.sort();
}

const rendered = new Map<string, KubeObject[]>();

/** `kubectl kustomize deploy/k8s/<dir>`, offline, memoized (callers must not mutate the result). */
export function render(dir: string): KubeObject[] {
  let objects = rendered.get(dir);
  if (!objects) {
    objects = renderKustomization(join(K8S, dir));
    rendered.set(dir, objects);
  }
  return objects;
}

export function find(objects: KubeObject[], kind: string, name: string): KubeObject | undefined {
  return objects.find((o) => o.kind === kind && o.metadata.name === name);
}

export function idOf(o: KubeObject): string {
  return `${o.kind}/${o.metadata.namespace ?? "-"}/${o.metadata.name}`;
}
