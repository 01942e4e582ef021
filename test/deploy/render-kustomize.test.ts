import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
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

const kubectl = spawnSync("kubectl", ["version", "--client"], { encoding: "utf8" }).status === 0;

describe.skipIf(!kubectl)("deploy/k8s renders the same as kubectl kustomize", () => {
  it.each(kustomizationDirs())("%s", (dir) => {
    const r = spawnSync("kubectl", ["kustomize", join(K8S, dir)], { encoding: "utf8" });
    expect(r.stderr).toBe("");
    const theirs = parseAllDocuments(r.stdout).map((d) => d.toJS() as KubeObject);
    const byId = (objects: KubeObject[]) => new Map(objects.map((o) => [idOf(o), o]));
    expect(byId(render(dir))).toEqual(byId(theirs));
  });
});
