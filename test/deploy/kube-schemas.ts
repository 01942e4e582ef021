/**
 * Validates Kubernetes (and Istio, and Prometheus Operator) objects against the OpenAPI schemas
 * compiled into `kubernetes-models`, `@kubernetes-models/istio` and
 * `@kubernetes-models/prometheus-operator`, and also reports fields the schema does not
 * know. Those schemas allow additional properties, so a misspelt `readOnlyRootFileSystem` would pass
 * them (and the API server would drop it, or reject it under strict field validation); here the
 * object is validated through a proxy that records every field the validator reads, and any field it
 * never read is one the schema does not define.
 */

import { IstioOperator } from "@kubernetes-models/istio/install.istio.io/v1alpha1";
import { ServiceEntry } from "@kubernetes-models/istio/networking.istio.io/v1";
import { AuthorizationPolicy } from "@kubernetes-models/istio/security.istio.io/v1";
import { PodMonitor, ServiceMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1";
import { Deployment } from "kubernetes-models/apps/v1";
import { HorizontalPodAutoscaler } from "kubernetes-models/autoscaling/v2";
import { Job } from "kubernetes-models/batch/v1";
import { NetworkPolicy } from "kubernetes-models/networking.k8s.io/v1";
import { PodDisruptionBudget } from "kubernetes-models/policy/v1";
import { ConfigMap, Namespace, Secret, Service, ServiceAccount } from "kubernetes-models/v1";

interface ModelClass {
  apiVersion: string;
  kind: string;
  prototype: { validate(): void };
}

const MODELS: readonly ModelClass[] = [
  Namespace,
  ConfigMap,
  Secret,
  Service,
  ServiceAccount,
  Deployment,
  Job,
  HorizontalPodAutoscaler,
  PodDisruptionBudget,
  NetworkPolicy,
  AuthorizationPolicy,
  ServiceEntry,
  IstioOperator,
  ServiceMonitor,
  PodMonitor,
];

/**
 * Parts whose schema is free-form (x-kubernetes-preserve-unknown-fields): the IstioOperator model
 * does not describe its spec, so the Istio test checks the extension provider field by field.
 */
const FREE_FORM: Readonly<Record<string, readonly string[]>> = {
  IstioOperator: ["/spec"],
};

/**
 * Schema problems of `object` ("" when none): validation errors, or the paths of fields its schema
 * does not define.
 */
export function schemaProblems(object: { apiVersion?: unknown; kind?: unknown }): string {
  const model = MODELS.find((m) => m.apiVersion === object.apiVersion && m.kind === object.kind);
  if (!model) return `no schema registered for ${String(object.apiVersion)} ${String(object.kind)}`;
  const read = new Set<string>();
  try {
    model.prototype.validate.call(tracked(object, "", read));
  } catch (err) {
    return (err as Error).message;
  }
  const unknown: string[] = [];
  collectUnread(object, "", read, FREE_FORM[String(object.kind)] ?? [], unknown);
  return unknown.length === 0 ? "" : `fields not in the schema: ${unknown.join(", ")}`;
}

function tracked(value: unknown, path: string, read: Set<string>): unknown {
  if (typeof value !== "object" || value === null) return value;
  return new Proxy(value, {
    get(target, key, receiver) {
      const child = Reflect.get(target, key, receiver);
      if (typeof key !== "string" || !Object.hasOwn(target, key)) return child;
      const childPath = `${path}/${key}`;
      read.add(childPath);
      return tracked(child, childPath, read);
    },
  });
}

function collectUnread(
  value: unknown,
  path: string,
  read: Set<string>,
  freeForm: readonly string[],
  out: string[],
): void {
  if (typeof value !== "object" || value === null) return;
  for (const [key, child] of Object.entries(value)) {
    const childPath = `${path}/${key}`;
    if (freeForm.includes(childPath)) continue;
    if (read.has(childPath)) collectUnread(child, childPath, read, freeForm, out);
    else out.push(childPath);
  }
}
