/**
 * `replacements` as kustomize does them: copy one field of one source object into fields of every
 * object a target selects. Field paths are dot-separated, with `[key=value]` picking a list element
 * by a field and a number picking one by index. A target field that does not exist is an error, as
 * in kustomize (without `options.create`, which is not supported here).
 */
import { isObject, type Json, type JsonObject, type KubeObject, list, onlyKeys } from "./json.ts";
import { selectorOf, selects } from "./selectors.ts";

export function applyReplacements(dir: string, specs: Json | undefined, objects: KubeObject[]): KubeObject[] {
  let out = objects;
  for (const spec of list(specs, "replacements")) {
    if (!isObject(spec) || !isObject(spec.source)) throw new Error(`${dir}: a replacement needs a source`);
    onlyKeys(spec, ["source", "targets"], `${dir}: replacement`);
    const { fieldPath, ...select } = spec.source;
    const sources = out.filter((o) => selects(selectorOf(select, `${dir}: replacement source`), o));
    if (sources.length !== 1) throw new Error(`${dir}: a replacement source must match one object`);
    const value = get(sources[0] as unknown as Json, String(fieldPath ?? "metadata.name"));
    if (value === undefined)
      throw new Error(`${dir}: replacement source field ${String(fieldPath)} is missing`);
    for (const target of list(spec.targets, "targets")) {
      if (!isObject(target)) throw new Error(`${dir}: a replacement target must be a mapping`);
      onlyKeys(target, ["select", "fieldPaths"], `${dir}: replacement target`);
      const selector = selectorOf(target.select ?? {}, `${dir}: replacement target`);
      const paths = list(target.fieldPaths, "fieldPaths").map(String);
      out = out.map((o) => {
        if (!selects(selector, o)) return o;
        const copy = structuredClone(o) as unknown as JsonObject;
        for (const path of paths)
          set(copy, path, value, `${dir}: replacement target ${o.kind}/${o.metadata.name}`);
        return copy as unknown as KubeObject;
      });
    }
  }
  return out;
}

function segments(path: string): string[] {
  return path.match(/\[[^\]]*\]|[^.]+/g) ?? [];
}

function step(node: Json | undefined, segment: string): Json | undefined {
  const byField = /^\[([^=\]]+)=([^\]]*)\]$/.exec(segment);
  if (byField) {
    if (!Array.isArray(node)) return undefined;
    return node.find((item) => isObject(item) && String(item[byField[1]!]) === byField[2]);
  }
  if (Array.isArray(node)) return /^\d+$/.test(segment) ? node[Number(segment)] : undefined;
  return isObject(node) ? node[segment] : undefined;
}

function get(root: Json, path: string): Json | undefined {
  let node: Json | undefined = root;
  for (const s of segments(path)) node = step(node, s);
  return node;
}

function set(root: JsonObject, path: string, value: Json, where: string): void {
  const parts = segments(path);
  const last = parts.pop()!;
  let node: Json | undefined = root;
  for (const s of parts) node = step(node, s);
  if (!isObject(node) || !(last in node)) throw new Error(`${where}: unable to find field ${path}`);
  node[last] = structuredClone(value);
}
