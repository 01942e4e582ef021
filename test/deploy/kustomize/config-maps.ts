/**
 * `configMapGenerator` as kustomize does it: ConfigMaps built from env files and literals (create,
 * merge into or replace an earlier one), and, once the whole build is done, a suffix on each
 * generated name hashed from its contents, with every reference to it in a pod template renamed to
 * match. The hash is kustomize's: SHA-256 of the Go JSON encoding of {data, kind, name}, the first
 * ten hex digits with 0, 1, 3, a, e mapped to g, h, k, m, t (so it never reads as a number). The
 * name in that encoding comes out empty in kustomize 5.5 (so only the data counts): that is what
 * reproduces the names `kubectl kustomize` prints, which render-kustomize.test.ts checks.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { isAbsolute, relative, resolve } from "node:path";
import { isObject, type Json, type JsonObject, type KubeObject, list, onlyKeys, stringList } from "./json.ts";

/** Marks a generated ConfigMap until the build's end; never left in the output. */
const GENERATED = "render-kustomize.internal/hash-suffix";

export function applyConfigMapGenerators(
  dir: string,
  specs: Json | undefined,
  objects: KubeObject[],
): KubeObject[] {
  let out = objects;
  for (const spec of list(specs, "configMapGenerator")) {
    if (!isObject(spec) || typeof spec.name !== "string") {
      throw new Error(`${dir}: each configMapGenerator needs a name`);
    }
    const where = `${dir}: configMapGenerator ${spec.name}`;
    onlyKeys(spec, ["name", "behavior", "envs", "literals", "options"], where);
    const options = isObject(spec.options) ? spec.options : {};
    onlyKeys(options, ["labels", "disableNameSuffixHash"], `${where} options`);
    const data: Record<string, string> = {};
    for (const file of stringList(spec.envs, `${where} envs`)) Object.assign(data, readEnvFile(dir, file));
    for (const literal of stringList(spec.literals, `${where} literals`)) {
      const [key, value] = splitPair(literal, where);
      data[key] = value;
    }
    const labels = (isObject(options.labels) ? options.labels : {}) as Record<string, string>;
    const behavior = spec.behavior ?? "create";
    if (behavior === "create") {
      if (out.some((o) => o.kind === "ConfigMap" && o.metadata.name === spec.name)) {
        throw new Error(`${where}: a ConfigMap of that name exists already (use behavior: merge)`);
      }
      const metadata: KubeObject["metadata"] = { name: spec.name };
      if (Object.keys(labels).length > 0) metadata.labels = { ...labels };
      if (options.disableNameSuffixHash !== true) metadata.annotations = { [GENERATED]: "true" };
      out = [...out, { apiVersion: "v1", kind: "ConfigMap", metadata, data }];
    } else if (behavior === "merge" || behavior === "replace") {
      const hits = out.filter((o) => o.kind === "ConfigMap" && o.metadata.name === spec.name);
      if (hits.length !== 1) throw new Error(`${where}: ${behavior} needs exactly one ConfigMap to act on`);
      const [old] = hits as [KubeObject];
      const merged: KubeObject = {
        ...old,
        metadata: { ...old.metadata, labels: { ...(old.metadata.labels as object), ...labels } },
        data: behavior === "merge" ? { ...(old.data as Record<string, string>), ...data } : data,
      };
      out = out.map((o) => (o === old ? merged : o));
    } else {
      throw new Error(`${where}: behavior ${String(behavior)} unsupported`);
    }
  }
  return out;
}

/** kustomize's env file: KEY=VALUE lines, `#` comments and blank lines skipped, the value verbatim. */
function readEnvFile(dir: string, file: string): Record<string, string> {
  const path = resolve(dir, file);
  const rel = relative(dir, path);
  if (rel.startsWith("..") || isAbsolute(rel)) {
    throw new Error(`${dir}: env file ${file} is outside the kustomization root (kustomize refuses it)`);
  }
  const data: Record<string, string> = {};
  for (const raw of readFileSync(path, "utf8").split("\n")) {
    const line = raw.trimStart();
    if (line === "" || line.startsWith("#")) continue;
    const [key, value] = splitPair(line, path);
    data[key] = value;
  }
  return data;
}

function splitPair(text: string, where: string): [string, string] {
  const eq = text.indexOf("=");
  if (eq <= 0) throw new Error(`${where}: "${text}" is not KEY=VALUE`);
  const value = text.slice(eq + 1);
  // kustomize strips quotes around literal values; none of ours need them, so refuse the ambiguity.
  if (/^["']/.test(value)) throw new Error(`${where}: quoted value in "${text}" unsupported`);
  return [text.slice(0, eq), value];
}

/** The build's last step: hash-suffixed names for generated ConfigMaps, and references renamed. */
export function hashGeneratedNames(objects: KubeObject[]): KubeObject[] {
  const renamed = new Map<string, string>();
  const key = (namespace: unknown, name: string) => `${String(namespace ?? "")}/${name}`;
  const hashed = objects.map((o) => {
    const annotations = o.metadata.annotations as Record<string, string> | undefined;
    if (o.kind !== "ConfigMap" || annotations?.[GENERATED] === undefined) return o;
    const { [GENERATED]: _, ...rest } = annotations;
    const metadata: KubeObject["metadata"] = {
      ...o.metadata,
      name: `${o.metadata.name}-${configMapHash(o)}`,
    };
    if (Object.keys(rest).length > 0) metadata.annotations = rest;
    else delete metadata.annotations;
    renamed.set(key(o.metadata.namespace, o.metadata.name), metadata.name);
    return { ...o, metadata };
  });
  return hashed.map((o) => {
    const spec = podSpecOf(o);
    if (!spec) return o;
    const copy = structuredClone(o);
    renameReferences(podSpecOf(copy)!, (name) => renamed.get(key(o.metadata.namespace, name)));
    return copy;
  });
}

/** kustomize's ConfigMap hash (api/hasher): over the data only, not the name or labels. */
function configMapHash(o: KubeObject): string {
  const encoded = goJson({ data: (o.data ?? {}) as Json, kind: "ConfigMap", name: "" });
  const hex = createHash("sha256").update(encoded).digest("hex");
  const map: Record<string, string> = { "0": "g", "1": "h", "3": "k", a: "m", e: "t" };
  return [...hex.slice(0, 10)].map((c) => map[c] ?? c).join("");
}

/** Go's json.Marshal: map keys sorted, and <, >, &, U+2028, U+2029 escaped. */
function goJson(value: Json): string {
  const sorted = (v: Json): Json =>
    Array.isArray(v)
      ? v.map(sorted)
      : isObject(v)
        ? Object.fromEntries(
            Object.keys(v)
              .sort()
              .map((k) => [k, sorted(v[k]!)]),
          )
        : v;
  return JSON.stringify(sorted(value)).replace(
    /[<>&\u2028\u2029]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

function podSpecOf(o: KubeObject): JsonObject | undefined {
  const spec = o.spec as JsonObject | undefined;
  if (!isObject(spec)) return undefined;
  if (o.kind === "Pod") return spec;
  const job = isObject(spec.jobTemplate) && isObject(spec.jobTemplate.spec) ? spec.jobTemplate.spec : spec;
  const template = job.template;
  return isObject(template) && isObject(template.spec) ? template.spec : undefined;
}

/** Every place a pod spec names a ConfigMap: envFrom, env valueFrom, volumes, projected volumes. */
function renameReferences(pod: JsonObject, rename: (name: string) => string | undefined): void {
  const fix = (ref: Json | undefined) => {
    if (isObject(ref) && typeof ref.name === "string") ref.name = rename(ref.name) ?? ref.name;
  };
  for (const field of ["containers", "initContainers", "ephemeralContainers"]) {
    for (const c of list(pod[field], field)) {
      if (!isObject(c)) continue;
      for (const e of list(c.envFrom, "envFrom")) if (isObject(e)) fix(e.configMapRef);
      for (const e of list(c.env, "env")) {
        if (isObject(e) && isObject(e.valueFrom)) fix(e.valueFrom.configMapKeyRef);
      }
    }
  }
  for (const v of list(pod.volumes, "volumes")) {
    if (!isObject(v)) continue;
    fix(v.configMap);
    if (isObject(v.projected)) {
      for (const s of list(v.projected.sources, "sources")) if (isObject(s)) fix(s.configMap);
    }
  }
}
