/**
 * Which objects a patch target or a replacement's `select` names: kind, name, namespace and an
 * equality-based label selector (`a=b`, `a==b`, `a!=b`, `a`, `!a`, comma-separated), as kustomize
 * reads them. Set-based terms (`in`, `notin`) are refused rather than misread.
 */
import { isObject, type Json, type KubeObject, labelsOf, onlyKeys } from "./json.ts";

export interface Selector {
  kind?: string;
  name?: string;
  namespace?: string;
  labelSelector?: string;
}

export function selectorOf(raw: Json, where: string): Selector {
  if (!isObject(raw)) throw new Error(`${where}: a selector must be a mapping`);
  onlyKeys(raw, ["kind", "name", "namespace", "labelSelector"], where);
  const text = (key: string) => (raw[key] === undefined ? undefined : String(raw[key]));
  const selector: Selector = {
    kind: text("kind"),
    name: text("name"),
    namespace: text("namespace"),
    labelSelector: text("labelSelector"),
  };
  if (selector.labelSelector !== undefined) parseLabelSelector(selector.labelSelector);
  return selector;
}

export function selects(s: Selector, o: KubeObject): boolean {
  if (s.kind !== undefined && o.kind !== s.kind) return false;
  if (s.name !== undefined && o.metadata.name !== s.name) return false;
  if (s.namespace !== undefined && o.metadata.namespace !== s.namespace) return false;
  if (s.labelSelector === undefined) return true;
  const labels = labelsOf(o);
  return parseLabelSelector(s.labelSelector).every((term) => term(labels));
}

type Term = (labels: Record<string, string>) => boolean;

function parseLabelSelector(text: string): Term[] {
  return text.split(",").map((raw) => {
    const part = raw.trim();
    if (/\s(in|notin)\s/.test(part)) throw new Error(`label selector "${text}": set-based terms unsupported`);
    const match = /^([^!=]+?)\s*(==|=|!=)\s*(.*)$/.exec(part);
    if (match) {
      const [, key, op, value] = match as unknown as [string, string, string, string];
      return op === "!=" ? (l: Record<string, string>) => l[key] !== value : (l) => l[key] === value;
    }
    if (part.startsWith("!")) return (l) => !(part.slice(1) in l);
    if (part === "") throw new Error(`label selector "${text}": empty term`);
    return (l) => part in l;
  });
}
