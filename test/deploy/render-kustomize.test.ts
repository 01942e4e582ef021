import { spawnSync } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import type { IDeployment } from "kubernetes-models/apps/v1/Deployment";
import { afterAll, describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { idOf, K8S, kustomizationDirs, render } from "./deploy-files.ts";
import { type KubeObject, renderKustomization, splitImage } from "./render-kustomize.ts";

const scratch = mkdtempSync(join(tmpdir(), "gatehouse-kustomize-"));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** Writes `files` (path → text) under a fresh folder and returns it. */
function tree(files: Record<string, string>): string {
  const root = mkdtempSync(join(scratch, "t-"));
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), text);
  }
  return root;
}

const BASE = {
  "base/kustomization.yaml": "resources: [app.yaml]\nnamespace: a\n",
  "base/app.yaml": `
apiVersion: apps/v1
kind: Deployment
metadata: { name: d }
spec:
  template:
    spec:
      containers:
        - name: c1
          image: registry.local:5000/team/app:1.0
          env: [{ name: A, value: "1" }, { name: B, value: "2" }, { name: C, value: "3" }]
          volumeMounts: [{ name: x, mountPath: /x }]
        - name: c2
          image: other
---
apiVersion: v1
kind: Namespace
metadata: { name: a }
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: { name: d }
spec: { minReplicas: 2, maxReplicas: 3 }
`,
};

describe("renderKustomization (kustomize semantics, checked against kubectl kustomize 5.5)", () => {
  it("merges keyed lists with the patch's elements first, replaces other lists, deletes null keys", () => {
    const root = tree({
      ...BASE,
      "ov/kustomization.yaml": `
resources: [../base]
patches:
  - patch: |-
      apiVersion: apps/v1
      kind: Deployment
      metadata: { name: d, namespace: a }
      spec:
        template:
          spec:
            containers:
              - name: c2
                image: null
                args: [x]
              - name: c3
              - name: c1
                env: [{ name: B, value: "22" }, { name: D, value: "4" }]
                volumeMounts: [{ name: y, mountPath: /x }]
`,
    });
    const [deployment] = renderKustomization(join(root, "ov")).filter((o) => o.kind === "Deployment");
    expect((deployment as unknown as IDeployment).spec!.template.spec!.containers).toEqual([
      { name: "c2", args: ["x"] },
      { name: "c3" },
      {
        name: "c1",
        image: "registry.local:5000/team/app:1.0",
        env: [
          { name: "B", value: "22" },
          { name: "D", value: "4" },
          { name: "A", value: "1" },
          { name: "C", value: "3" },
        ],
        volumeMounts: [{ name: "y", mountPath: "/x" }],
      },
    ]);
  });

  it("applies patches before the namespace, which renames Namespace objects too", () => {
    const patch = (ns: string) => `
resources: [../base]
namespace: b
patches:
  - patch: |-
      apiVersion: autoscaling/v2
      kind: HorizontalPodAutoscaler
      metadata: { name: d, namespace: ${ns} }
      spec: { minReplicas: 1 }
`;
    const root = tree({
      ...BASE,
      "ok/kustomization.yaml": patch("a"),
      "late/kustomization.yaml": patch("b"),
    });
    const objects = renderKustomization(join(root, "ok"));
    expect(objects.map(idOf)).toEqual(["Deployment/b/d", "Namespace/-/b", "HorizontalPodAutoscaler/b/d"]);
    expect(objects[2]!.spec).toEqual({ minReplicas: 1, maxReplicas: 3 });
    expect(() => renderKustomization(join(root, "late"))).toThrow(/no resource matches/);
  });

  it("deletes with $patch: delete, patches with JSON 6902, sets images and replicas, applies components", () => {
    const root = tree({
      ...BASE,
      "ov/kustomization.yaml": `
resources: [../base]
components: [../image]
replicas: [{ name: d, count: 1 }]
patches:
  - patch: |-
      $patch: delete
      apiVersion: autoscaling/v2
      kind: HorizontalPodAutoscaler
      metadata: { name: d, namespace: a }
  - target: { kind: Deployment, name: d, namespace: a }
    patch: |-
      - op: replace
        path: /spec/template/spec/containers/1/image
        value: other:2
      - op: add
        path: /spec/template/spec/containers/0/env/-
        value: { name: E, value: "5" }
`,
      "image/kustomization.yaml": `
apiVersion: kustomize.config.k8s.io/v1alpha1
kind: Component
images: [{ name: registry.local:5000/team/app, newName: r.example/app, newTag: "2.0" }]
`,
    });
    const objects = renderKustomization(join(root, "ov"));
    expect(objects.map(idOf)).toEqual(["Deployment/a/d", "Namespace/-/a"]);
    const spec = (objects[0] as unknown as IDeployment).spec!;
    const containers = spec.template.spec!.containers;
    expect(spec.replicas).toBe(1);
    expect(containers.map((c) => c.image)).toEqual(["r.example/app:2.0", "other:2"]);
    expect(containers[0]!.env?.at(-1)).toEqual({ name: "E", value: "5" });
  });

  it("generates ConfigMaps with kustomize's hash suffix, merges overlays into them and renames references", () => {
    const root = tree({
      ...BASE,
      "base/settings.env": "# a comment\n\nA=1\n  B=two words\n",
      "gen/kustomization.yaml": `
resources: [../base]
configMapGenerator:
  - name: settings
    envs: [../base/settings.env]
`,
      "ov/kustomization.yaml": `
resources: [../base]
namespace: a
configMapGenerator:
  - name: settings
    envs: [settings.env]
    literals: [C=3]
    options: { labels: { tier: x } }
patches:
  - patch: |-
      apiVersion: apps/v1
      kind: Deployment
      metadata: { name: d, namespace: a }
      spec:
        template:
          spec:
            containers:
              - name: c1
                envFrom: [{ configMapRef: { name: settings } }]
            volumes: [{ name: v, configMap: { name: settings } }, { name: w, configMap: { name: other } }]
`,
      "ov/settings.env": "A=1\nB=two words\n",
      "top/kustomization.yaml": `
resources: [../ov]
namespace: a
configMapGenerator:
  - name: settings
    behavior: merge
    literals: [A=10]
`,
    });
    expect(() => renderKustomization(join(root, "gen"))).toThrow(/outside the kustomization root/);
    const ov = renderKustomization(join(root, "ov"));
    const cm = ov.find((o) => o.kind === "ConfigMap")!;
    // What kubectl kustomize 5.5 prints for these data (its hash covers the data only).
    expect(cm).toEqual({
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: "settings-45522tm85m", namespace: "a", labels: { tier: "x" } },
      data: { A: "1", B: "two words", C: "3" },
    });
    const spec = (ov.find((o) => o.kind === "Deployment") as unknown as IDeployment).spec!.template.spec!;
    expect(spec.containers[0]!.envFrom).toEqual([{ configMapRef: { name: "settings-45522tm85m" } }]);
    expect(spec.volumes!.map((v) => v.configMap?.name)).toEqual(["settings-45522tm85m", "other"]);
    // A merge from an overlay changes the data, so the name, so every pod that reads it rolls.
    const top = renderKustomization(join(root, "top"));
    const merged = top.find((o) => o.kind === "ConfigMap")!;
    expect(merged.data).toEqual({ A: "10", B: "two words", C: "3" });
    expect(merged.metadata.name).toMatch(/^settings-[a-z0-9]{10}$/);
    expect(merged.metadata.name).not.toBe(cm.metadata.name);
    const topSpec = (top.find((o) => o.kind === "Deployment") as unknown as IDeployment).spec!.template.spec!;
    expect(topSpec.containers[0]!.envFrom).toEqual([{ configMapRef: { name: merged.metadata.name } }]);
  });

  it("selects patch targets and replacement targets by label, and refuses a replacement into nothing", () => {
    const root = tree({
      ...BASE,
      "labels/app.yaml": `
apiVersion: v1
kind: Service
metadata: { name: s1, labels: { inject: "yes", tier: web } }
spec: { ports: [{ port: 80, targetPort: 8080 }] }
---
apiVersion: v1
kind: Service
metadata: { name: s2, labels: { inject: "no" } }
spec: { ports: [{ port: 80, targetPort: 8080 }] }
---
apiVersion: v1
kind: ConfigMap
metadata: { name: source }
data: { value: from-source }
`,
      "labels/kustomization.yaml": `
resources: [app.yaml]
components: [../component]
`,
      "component/kustomization.yaml": `
kind: Component
patches:
  - target: { kind: Service, labelSelector: "inject=yes,tier" }
    patch: |-
      - op: add
        path: /spec/ports/0/targetPort
        value: 7401
  - target: { kind: Service, labelSelector: "inject!=yes" }
    patch: |-
      apiVersion: v1
      kind: Service
      metadata: { name: placeholder, labels: { patched: "true" } }
  - target: { kind: Deployment, labelSelector: nobody }
    patch: |-
      apiVersion: apps/v1
      kind: Deployment
      metadata: { name: placeholder }
      spec: { replicas: 3 }
replacements:
  - source: { kind: ConfigMap, name: source, fieldPath: data.value }
    targets:
      - select: { kind: Service, labelSelector: inject }
        fieldPaths: [metadata.annotations.copied]
`,
      "strict/kustomization.yaml": `
resources: [../labels/app.yaml]
`,
    });
    expect(() => renderKustomization(join(root, "labels"))).toThrow(
      /unable to find field metadata.annotations.copied/,
    );
    writeFileSync(
      join(root, "labels/app.yaml"),
      readFileSync(join(root, "labels/app.yaml"), "utf8").replace(
        /name: (s\d)/g,
        "name: $1, annotations: { copied: x }",
      ),
    );
    const objects = renderKustomization(join(root, "labels"));
    const s1 = objects.find((o) => o.metadata.name === "s1")!;
    const s2 = objects.find((o) => o.metadata.name === "s2")!;
    expect((s1.spec as { ports: unknown[] }).ports).toEqual([{ port: 80, targetPort: 7401 }]);
    expect((s2.spec as { ports: unknown[] }).ports).toEqual([{ port: 80, targetPort: 8080 }]);
    // The placeholder name of a targeted patch never renames what it patches.
    expect(s2.metadata.labels).toEqual({ inject: "no", patched: "true" });
    expect(s1.metadata.annotations).toEqual({ copied: "from-source" });
    expect(s2.metadata.annotations).toEqual({ copied: "from-source" });
    expect(() => renderKustomization(join(root, "strict"))).toThrow(/outside the kustomization root/);
  });

  it("refuses what kustomize refuses and what it does not implement", () => {
    const root = tree({
      ...BASE,
      "outside/kustomization.yaml": "resources: [../base/app.yaml]\n",
      "unknown/kustomization.yaml": "resources: [../base]\ncommonLabels: { a: b }\n",
      "component/kustomization.yaml": "kind: Component\n",
    });
    expect(() => renderKustomization(join(root, "outside"))).toThrow(/outside the kustomization root/);
    expect(() => renderKustomization(join(root, "unknown"))).toThrow(/commonLabels/);
    expect(() => renderKustomization(join(root, "component"))).toThrow(/Component/);
  });

  it("splits image references the way kustomize matches them", () => {
    expect(splitImage("gatehouse")).toEqual({ name: "gatehouse" });
    expect(splitImage("registry:5000/team/app:1.2@sha256:ab")).toEqual({
      name: "registry:5000/team/app",
      tag: "1.2",
      digest: "sha256:ab",
    });
  });
});

/** kubectl's kustomize (5.5 here) is the reference: without it this suite fails rather than skips. */
function kubectlKustomize(dir: string): KubeObject[] {
  const r = spawnSync("kubectl", ["kustomize", dir], { encoding: "utf8" });
  if (r.error)
    throw new Error(`kubectl is needed to cross-check the renderer and was not found: ${r.error.message}`);
  expect(r.stderr).toBe("");
  expect(r.status).toBe(0);
  return parseAllDocuments(r.stdout).map((d) => d.toJS() as KubeObject);
}

describe("deploy/k8s renders the same as kubectl kustomize", () => {
  it.each(kustomizationDirs())("%s", (dir) => {
    const byId = (objects: KubeObject[]) => new Map(objects.map((o) => [idOf(o), o]));
    expect(byId(render(dir))).toEqual(byId(kubectlKustomize(join(K8S, dir))));
  });

  it("and so do this file's own trees (label selection, generators, replacements)", () => {
    for (const root of readdirSync(scratch).map((t) => join(scratch, t))) {
      for (const dir of readdirSync(root).map((d) => join(root, d))) {
        if (!existsSync(join(dir, "kustomization.yaml")) || isComponent(dir)) continue;
        const r = spawnSync("kubectl", ["kustomize", dir], { encoding: "utf8" });
        let ours: KubeObject[];
        try {
          ours = renderKustomization(dir);
        } catch (err) {
          // What this renderer refuses as kustomize would, kustomize refuses too; the rest (fields
          // it does not implement) it refuses on purpose.
          const message = (err as Error).message;
          if (/outside the kustomization root|unable to find field|no resource matches/.test(message)) {
            expect(r.status, `${dir}: kubectl accepted what the renderer refused: ${message}`).not.toBe(0);
          }
          continue;
        }
        expect(r.status, `${dir}: ${r.stderr}`).toBe(0);
        const byId = (objects: KubeObject[]) => new Map(objects.map((o) => [idOf(o), o]));
        expect(byId(ours), dir).toEqual(byId(parseAllDocuments(r.stdout).map((d) => d.toJS() as KubeObject)));
      }
    }
  });
});

function isComponent(dir: string): boolean {
  return /kind:\s*Component/.test(readFileSync(join(dir, "kustomization.yaml"), "utf8"));
}
