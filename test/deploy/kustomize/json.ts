/** The plain-data types and helpers the offline kustomize works on. */
import { parseAllDocuments } from "yaml";

export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; [key: string]: unknown };
  [key: string]: unknown;
}

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

export function isObject(value: unknown): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

export function clone<T extends Json>(value: T): T {
  return structuredClone(value);
}

export function list(value: Json | undefined, field: string): Json[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) throw new Error(`${field} must be a list`);
  return value;
}

export function stringList(value: Json | undefined, field: string): string[] {
  return list(value, field).map((v) => {
    if (typeof v !== "string") throw new Error(`${field} entries must be strings`);
    return v;
  });
}

/** Rejects any key of `object` outside `allowed`: a feature this renderer lacks must not pass silently. */
export function onlyKeys(object: JsonObject, allowed: readonly string[], where: string): void {
  for (const key of Object.keys(object)) {
    if (!allowed.includes(key)) throw new Error(`${where}: field "${key}" is not supported here`);
  }
}

export function parseYaml(text: string, source: string): Json[] {
  const out: Json[] = [];
  for (const doc of parseAllDocuments(text)) {
    if (doc.errors.length > 0) throw new Error(`${source}: ${doc.errors[0]!.message}`);
    const value = doc.toJS() as Json | undefined;
    if (value !== null && value !== undefined) out.push(value);
  }
  return out;
}

export function labelsOf(o: KubeObject): Record<string, string> {
  const labels = o.metadata.labels;
  return isObject(labels) ? (labels as Record<string, string>) : {};
}
