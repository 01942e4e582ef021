/** Reading pods out of rendered objects, for the Kubernetes tests. */
import type { IDeployment } from "kubernetes-models/apps/v1/Deployment";
import type { IJob } from "kubernetes-models/batch/v1/Job";
import type { IConfigMap } from "kubernetes-models/v1/ConfigMap";
import type { IContainer } from "kubernetes-models/v1/Container";
import type { IPodSpec } from "kubernetes-models/v1/PodSpec";
import type { IPodTemplateSpec } from "kubernetes-models/v1/PodTemplateSpec";
import { idOf } from "./deploy-files.ts";
import type { KubeObject } from "./render-kustomize.ts";

export interface Pod {
  id: string;
  owner: KubeObject;
  template: IPodTemplateSpec;
  spec: IPodSpec;
}

export function pods(objects: KubeObject[]): Pod[] {
  return objects
    .filter((o) => o.kind === "Deployment" || o.kind === "Job")
    .map((o) => {
      const template = (o as unknown as IDeployment | IJob).spec!.template as IPodTemplateSpec;
      return { id: idOf(o), owner: o, template, spec: template.spec! };
    });
}

export function containersOf(spec: IPodSpec): IContainer[] {
  return [...(spec.initContainers ?? []), ...spec.containers];
}

/** The Gatehouse role a container runs (`serve`, `sidecar`, `migrate`), if it runs one. */
export function role(c: IContainer): string | undefined {
  return c.command === undefined ? c.args?.[0] : undefined;
}

export function portNumber(spec: IPodSpec, port: number | string | undefined): number | undefined {
  if (typeof port === "number") return port;
  for (const c of containersOf(spec)) {
    const hit = c.ports?.find((p) => p.name === port);
    if (hit) return hit.containerPort;
  }
  return undefined;
}

/** Names of the ConfigMaps a pod reads: envFrom, env valueFrom, volumes (projected ones too). */
export function configMapRefs(spec: IPodSpec): string[] {
  const names = containersOf(spec).flatMap((c) => [
    ...(c.envFrom ?? []).flatMap((e) => (e.configMapRef ? [e.configMapRef.name ?? ""] : [])),
    ...(c.env ?? []).flatMap((e) =>
      e.valueFrom?.configMapKeyRef ? [e.valueFrom.configMapKeyRef.name ?? ""] : [],
    ),
  ]);
  for (const v of spec.volumes ?? []) {
    if (v.configMap) names.push(v.configMap.name ?? "");
    for (const s of v.projected?.sources ?? []) if (s.configMap) names.push(s.configMap.name ?? "");
  }
  return names;
}

/**
 * The environment a container starts with, as the kubelet builds it: envFrom ConfigMaps in order
 * (later ones win), then env, with `fieldRef`s to the pod's labels and annotations resolved (an
 * absent one reads as "") and `$(VAR)` expanded. Secret references stay unresolved (`<secret>`).
 */
export function containerEnv(objects: KubeObject[], pod: Pod, c: IContainer): Record<string, string> {
  const namespace = pod.owner.metadata.namespace;
  const env: Record<string, string> = {};
  for (const from of c.envFrom ?? []) {
    const name = from.configMapRef?.name;
    const cm = objects.find(
      (o) => o.kind === "ConfigMap" && o.metadata.name === name && o.metadata.namespace === namespace,
    ) as unknown as IConfigMap | undefined;
    if (!cm) throw new Error(`${pod.id}: ConfigMap ${name} is not rendered beside it`);
    Object.assign(env, cm.data);
  }
  const meta = pod.template.metadata ?? {};
  for (const e of c.env ?? []) {
    const field = e.valueFrom?.fieldRef?.fieldPath;
    if (e.value !== undefined)
      env[e.name] = e.value.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (all, v) => env[v] ?? all);
    else if (field) {
      const m = /^metadata\.(labels|annotations)\['([^']+)'\]$/.exec(field);
      if (!m) throw new Error(`${pod.id}: fieldRef ${field} not modelled`);
      env[e.name] = (m[1] === "labels" ? meta.labels : meta.annotations)?.[m[2]!] ?? "";
    } else env[e.name] = "<secret>";
  }
  return env;
}
