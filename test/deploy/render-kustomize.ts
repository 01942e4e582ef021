/**
 * A small, offline kustomize: renders a kustomization directory into its objects, like
 * `kubectl kustomize DIR`, for the subset of features deploy/k8s uses. Anything else in a
 * kustomization (a field, a patch directive, a target selector) is an error rather than silently
 * ignored, so the manifests cannot drift into features this renderer would get wrong.
 *
 * Supported: `resources` (files and kustomization directories, files only inside the kustomization's
 * own folder, as kustomize's default load restrictor requires), `components` (which may list
 * components), `configMapGenerator` (./kustomize/config-maps.ts), `patches` (strategic merge, or
 * JSON 6902 with a `target`; a target selects by kind, name, namespace and label selector),
 * `namespace`, `images`, `replicas`, `replacements` (./kustomize/replacements.ts). Applied in
 * kustomize's order: resources, components, generators, then patches, namespace, images, replicas,
 * replacements; hash suffixes on generated names last, for the whole build. Strategic merge follows
 * kustomize's (kyaml's) list handling: lists with a Kubernetes merge key merge element by element,
 * the patch's elements first, then the remaining ones; other lists are replaced; `null` deletes a key;
 * `$patch: delete` at the top deletes the object.
 */
import { existsSync, readFileSync, statSync } from "node:fs";
import { isAbsolute, join, relative, resolve } from "node:path";
import { applyConfigMapGenerators, hashGeneratedNames } from "./kustomize/config-maps.ts";
import {
  clone,
  isObject,
  type Json,
  type JsonObject,
  type KubeObject,
  list,
  parseYaml,
  stringList,
} from "./kustomize/json.ts";
import { applyReplacements } from "./kustomize/replacements.ts";
import { type Selector, selectorOf, selects } from "./kustomize/selectors.ts";

export type { KubeObject } from "./kustomize/json.ts";

const KUSTOMIZATION_FIELDS = new Set([
  "apiVersion",
  "kind",
  "resources",
  "components",
  "namespace",
  "patches",
  "images",
  "replicas",
  "configMapGenerator",
  "replacements",
]);

/** Kinds without a namespace; kustomize's namespace transformer leaves them alone (but renames a Namespace). */
const CLUSTER_SCOPED = new Set([
  "ClusterRole",
  "ClusterRoleBinding",
  "CustomResourceDefinition",
  "IngressClass",
  "MutatingWebhookConfiguration",
  "PersistentVolume",
  "PriorityClass",
  "StorageClass",
  "ValidatingWebhookConfiguration",
]);

const SCALABLE = new Set(["Deployment", "ReplicaSet", "ReplicationController", "StatefulSet"]);

/** Renders the kustomization in `dir`: the objects `kubectl kustomize dir` would print. */
export function renderKustomization(dir: string): KubeObject[] {
  const root = resolve(dir);
  const k = loadKustomization(root);
  if (k.kind === "Component") throw new Error(`${root}: a Component cannot be rendered on its own`);
  // Generated names get their hash suffix only once the whole build is done, as in kustomize.
  return hashGeneratedNames(build(root, k, []));
}

/** Reads `kustomization.yaml` (or `.yml`, `Kustomization`) and rejects fields this renderer lacks. */
export function loadKustomization(dir: string): JsonObject {
  const file = ["kustomization.yaml", "kustomization.yml", "Kustomization"]
    .map((name) => join(dir, name))
    .find((f) => existsSync(f));
  if (!file) throw new Error(`${dir}: no kustomization.yaml`);
  const docs = parseYaml(readFileSync(file, "utf8"), file);
  if (docs.length !== 1 || !isObject(docs[0])) throw new Error(`${file}: expected one mapping`);
  const k = docs[0];
  for (const field of Object.keys(k)) {
    if (!KUSTOMIZATION_FIELDS.has(field)) throw new Error(`${file}: field "${field}" is not supported here`);
  }
  const kind = k.kind ?? "Kustomization";
  if (kind !== "Kustomization" && kind !== "Component") throw new Error(`${file}: unknown kind ${kind}`);
  return { ...k, kind };
}

function build(dir: string, k: JsonObject, inherited: KubeObject[]): KubeObject[] {
  let objects = [...inherited];
  for (const entry of stringList(k.resources, "resources")) objects.push(...loadResource(dir, entry));
  for (const entry of stringList(k.components, "components")) {
    const componentDir = resolve(dir, entry);
    const component = loadKustomization(componentDir);
    if (component.kind !== "Component")
      throw new Error(`${componentDir}: listed as a component but is not one`);
    objects = build(componentDir, component, objects);
  }
  objects = applyConfigMapGenerators(dir, k.configMapGenerator, objects);
  for (const patch of list(k.patches, "patches")) objects = applyPatch(dir, objects, patch);
  if (k.namespace !== undefined) objects = objects.map((o) => setNamespace(o, String(k.namespace)));
  for (const image of list(k.images, "images")) objects = objects.map((o) => setImage(o, image));
  for (const replicas of list(k.replicas, "replicas")) objects = setReplicas(objects, replicas);
  return applyReplacements(dir, k.replacements, objects);
}

function loadResource(dir: string, entry: string): KubeObject[] {
  const path = resolve(dir, entry);
  if (!existsSync(path)) throw new Error(`${dir}: resource ${entry} does not exist`);
  if (statSync(path).isDirectory()) {
    const k = loadKustomization(path);
    if (k.kind === "Component") throw new Error(`${path}: a Component cannot be a resource`);
    return build(path, k, []);
  }
  const rel = relative(dir, path);
  if (rel.startsWith("..") || isAbsolute(rel)) {
    throw new Error(`${dir}: file ${entry} is outside the kustomization root (kustomize refuses it)`);
  }
  return parseYaml(readFileSync(path, "utf8"), path).map((doc) => asKubeObject(doc, path));
}

function applyPatch(dir: string, objects: KubeObject[], spec: Json): KubeObject[] {
  if (!isObject(spec)) throw new Error(`${dir}: a patch must be a mapping`);
  for (const field of Object.keys(spec)) {
    if (!["path", "patch", "target"].includes(field))
      throw new Error(`${dir}: patch field "${field}" unsupported`);
  }
  const source = typeof spec.path === "string" ? join(dir, spec.path) : `${dir} (inline patch)`;
  const text = typeof spec.path === "string" ? readFileSync(source, "utf8") : String(spec.patch ?? "");
  const docs = parseYaml(text, source);
  if (docs.length !== 1) throw new Error(`${source}: expected exactly one patch document`);
  const patch = docs[0]!;
  const target = spec.target === undefined ? undefined : selectorOf(spec.target, `${source}: target`);
  if (Array.isArray(patch)) {
    if (!target) throw new Error(`${source}: a JSON 6902 patch needs a target`);
    return objects.map((o) => (selects(target, o) ? applyJson6902(o, patch, source) : o));
  }
  if (!isObject(patch)) throw new Error(`${source}: a patch must be a mapping or a list of operations`);
  const meta = isObject(patch.metadata) ? patch.metadata : {};
  const selector: Selector = target ?? {
    kind: String(patch.kind),
    name: String(meta.name),
    namespace: meta.namespace === undefined ? undefined : String(meta.namespace),
  };
  const hits = objects.filter((o) => selects(selector, o));
  // A patch that names its object must find it; one with a target may select nothing (kustomize).
  if (hits.length === 0 && !target) {
    throw new Error(`${source}: no resource matches ${JSON.stringify(selector)}`);
  }
  if (patch.$patch === "delete") return objects.filter((o) => !hits.includes(o));
  // With a target, the patch's own name and namespace are placeholders: each hit keeps its own.
  const body = target ? { ...patch, metadata: withoutIdentity(meta) } : patch;
  return objects.map((o) =>
    hits.includes(o) ? (strategicMerge(o as unknown as Json, body, o.kind, []) as unknown as KubeObject) : o,
  );
}

function withoutIdentity(meta: JsonObject): JsonObject {
  const { name: _name, namespace: _namespace, ...rest } = meta;
  return rest;
}

/** Kubernetes' patchMergeKey for the lists deploy/k8s patches; every other list is replaced. */
function mergeKey(kind: string, path: readonly string[]): string | undefined {
  const field = path[path.length - 1];
  const parent = path[path.length - 2];
  switch (field) {
    case "containers":
    case "initContainers":
    case "ephemeralContainers":
    case "volumes":
    case "env":
    case "imagePullSecrets":
      return "name";
    case "volumeMounts":
      return "mountPath";
    case "topologySpreadConstraints":
      return "topologyKey";
    case "ports":
      if (parent === "containers" || parent === "initContainers") return "containerPort";
      if (kind === "Service" && path.length === 2) return "port";
      return undefined;
    default:
      return undefined;
  }
}

function strategicMerge(base: Json, patch: Json, kind: string, path: string[]): Json {
  if (!isObject(patch) || !isObject(base)) return clone(patch);
  const out: JsonObject = clone(base) as JsonObject;
  for (const [key, value] of Object.entries(patch)) {
    if (key.startsWith("$")) {
      throw new Error(`strategic merge directive ${key} at ${[...path, key].join(".")} is not supported`);
    }
    if (value === null) {
      delete out[key];
      continue;
    }
    const current = out[key];
    const here = [...path, key];
    if (Array.isArray(value) && Array.isArray(current)) {
      const by = mergeKey(kind, here);
      out[key] = by ? mergeList(current, value, by, kind, here) : clone(value);
    } else if (isObject(value) && isObject(current)) {
      out[key] = strategicMerge(current, value, kind, here);
    } else {
      out[key] = clone(value);
    }
  }
  return out;
}

function mergeList(base: Json[], patch: Json[], key: string, kind: string, path: string[]): Json[] {
  const keyOf = (item: Json) => (isObject(item) ? item[key] : undefined);
  const merged = patch.map((item) => {
    const existing = base.find((b) => keyOf(b) !== undefined && keyOf(b) === keyOf(item));
    // Elements of a merged list are walked with the list's own path (kustomize does the same).
    return existing === undefined ? clone(item) : strategicMerge(existing, item, kind, path);
  });
  const patched = new Set(patch.map(keyOf));
  return [...merged, ...base.filter((b) => !patched.has(keyOf(b))).map(clone)];
}

function applyJson6902(o: KubeObject, ops: Json[], source: string): KubeObject {
  const out = clone(o as unknown as Json) as JsonObject;
  for (const op of ops) {
    if (!isObject(op) || typeof op.path !== "string") throw new Error(`${source}: bad JSON 6902 operation`);
    const tokens = op.path
      .split("/")
      .slice(1)
      .map((t) => t.replace(/~1/g, "/").replace(/~0/g, "~"));
    const last = tokens.pop();
    if (last === undefined) throw new Error(`${source}: cannot patch the root`);
    let node: Json = out;
    for (const t of tokens) {
      node = Array.isArray(node) ? (node[Number(t)] as Json) : isObject(node) ? (node[t] as Json) : null;
      if (node === null || node === undefined) throw new Error(`${source}: ${op.path} does not exist`);
    }
    const container = node as JsonObject | Json[];
    switch (op.op) {
      case "add":
      case "replace":
        if (Array.isArray(container)) {
          const index = last === "-" ? container.length : Number(last);
          if (op.op === "add") container.splice(index, 0, clone(op.value ?? null));
          else container[index] = clone(op.value ?? null);
        } else {
          if (op.op === "replace" && !(last in container))
            throw new Error(`${source}: ${op.path} does not exist`);
          container[last] = clone(op.value ?? null);
        }
        break;
      case "remove":
        if (Array.isArray(container)) container.splice(Number(last), 1);
        else delete container[last];
        break;
      default:
        throw new Error(`${source}: JSON 6902 op ${String(op.op)} is not supported`);
    }
  }
  return out as unknown as KubeObject;
}

function setNamespace(o: KubeObject, namespace: string): KubeObject {
  if (o.kind === "Namespace") return { ...o, metadata: { ...o.metadata, name: namespace } };
  if (CLUSTER_SCOPED.has(o.kind)) return o;
  return { ...o, metadata: { ...o.metadata, namespace } };
}

function setImage(o: KubeObject, spec: Json): KubeObject {
  if (!isObject(spec) || typeof spec.name !== "string") throw new Error("images: each entry needs a name");
  for (const field of Object.keys(spec)) {
    if (!["name", "newName", "newTag", "digest"].includes(field))
      throw new Error(`images: ${field} unsupported`);
  }
  const rewrite = (image: string): string => {
    const { name, tag, digest } = splitImage(image);
    if (name !== spec.name) return image;
    const newName = typeof spec.newName === "string" ? spec.newName : name;
    if (spec.digest !== undefined) return `${newName}@${String(spec.digest)}`;
    if (spec.newTag !== undefined) return `${newName}:${String(spec.newTag)}`;
    return `${newName}${tag ? `:${tag}` : ""}${digest ? `@${digest}` : ""}`;
  };
  const walk = (node: Json, key?: string): Json => {
    if (Array.isArray(node)) {
      const isContainers = key === "containers" || key === "initContainers" || key === "ephemeralContainers";
      return node.map((item) =>
        isContainers && isObject(item) && typeof item.image === "string"
          ? (walk({ ...item, image: rewrite(item.image) }) as Json)
          : walk(item),
      );
    }
    if (!isObject(node)) return node;
    return Object.fromEntries(Object.entries(node).map(([k, v]) => [k, walk(v, k)]));
  };
  return walk(o as unknown as Json) as unknown as KubeObject;
}

/** `registry:5000/team/app:1.2@sha256:...` → name, tag, digest. */
export function splitImage(image: string): { name: string; tag?: string; digest?: string } {
  const [withTag, digest] = image.split("@", 2) as [string, string | undefined];
  const slash = withTag.lastIndexOf("/");
  const colon = withTag.lastIndexOf(":");
  const hasTag = colon > slash;
  return {
    name: hasTag ? withTag.slice(0, colon) : withTag,
    ...(hasTag ? { tag: withTag.slice(colon + 1) } : {}),
    ...(digest ? { digest } : {}),
  };
}

function setReplicas(objects: KubeObject[], spec: Json): KubeObject[] {
  if (!isObject(spec) || typeof spec.name !== "string" || typeof spec.count !== "number") {
    throw new Error("replicas: each entry needs a name and a count");
  }
  const hits = objects.filter((o) => SCALABLE.has(o.kind) && o.metadata.name === spec.name);
  if (hits.length === 0) throw new Error(`replicas: nothing named ${spec.name} to scale`);
  return objects.map((o) =>
    hits.includes(o) ? { ...o, spec: { ...(o.spec as JsonObject), replicas: spec.count } } : o,
  );
}

function asKubeObject(doc: Json, source: string): KubeObject {
  if (
    !isObject(doc) ||
    typeof doc.apiVersion !== "string" ||
    typeof doc.kind !== "string" ||
    !isObject(doc.metadata) ||
    typeof doc.metadata.name !== "string"
  ) {
    throw new Error(`${source}: every document needs apiVersion, kind and metadata.name`);
  }
  return doc as unknown as KubeObject;
}
