import type { IServiceEntry } from "@kubernetes-models/istio/networking.istio.io/v1/ServiceEntry";
import type { IAuthorizationPolicy } from "@kubernetes-models/istio/security.istio.io/v1/AuthorizationPolicy";
import type { IDeployment } from "kubernetes-models/apps/v1/Deployment";
import { describe, expect, it } from "vitest";
import { find, readYamlDocuments, render } from "./deploy-files.ts";
import { schemaProblems } from "./kube-schemas.ts";

interface ExtensionProvider {
  name: string;
  envoyExtAuthzGrpc?: { service: string; port: number; timeout?: string; failOpen?: boolean };
}

describe("Istio: ext_authz through the pod's Gatehouse sidecar", () => {
  const [operator] = readYamlDocuments("deploy/k8s/istio/istio-operator.yaml");
  const objects = render("istio");
  const policy = find(
    objects,
    "AuthorizationPolicy",
    "demo-app-gatehouse",
  ) as unknown as IAuthorizationPolicy;
  const entry = find(objects, "ServiceEntry", "gatehouse-ext-authz") as unknown as IServiceEntry;
  const providers = ((operator?.spec as { meshConfig?: { extensionProviders?: ExtensionProvider[] } })
    ?.meshConfig?.extensionProviders ?? []) as ExtensionProvider[];

  it("declares a mesh extension provider calling the sidecar's control port over gRPC", () => {
    expect(operator?.apiVersion).toBe("install.istio.io/v1alpha1");
    expect(operator?.kind).toBe("IstioOperator");
    expect(schemaProblems(operator!)).toBe("");
    expect(providers).toHaveLength(1);
    const grpc = providers[0]!.envoyExtAuthzGrpc!;
    expect(grpc.port).toBe(7402);
    expect(grpc.failOpen).toBe(false);
    expect(grpc.timeout).toMatch(/^\d+(\.\d+)?(ms|s)$/);
  });

  it("resolves the provider's service to 127.0.0.1, the sidecar in the same pod", () => {
    expect(schemaProblems(entry as never)).toBe("");
    const grpc = providers[0]!.envoyExtAuthzGrpc!;
    expect(entry.spec!.hosts).toEqual([grpc.service]);
    expect(entry.spec!.endpoints?.map((e) => e.address)).toEqual(["127.0.0.1"]);
    expect(entry.spec!.ports?.map((p) => [p.number, p.protocol])).toEqual([[grpc.port, "GRPC"]]);
    expect(entry.spec!.resolution).toBe("STATIC");
  });

  it("sends the demo app's requests to that provider with action CUSTOM", () => {
    expect(policy.apiVersion).toBe("security.istio.io/v1");
    expect(schemaProblems(policy as never)).toBe("");
    expect(policy.spec!.action).toBe("CUSTOM");
    expect(policy.spec!.provider?.name).toBe(providers[0]!.name);
    expect(policy.spec!.rules?.length).toBeGreaterThan(0);
    const app = find(render("example-app"), "Deployment", "demo-app") as unknown as IDeployment;
    expect(app.spec!.template.metadata?.labels).toMatchObject(policy.spec!.selector!.matchLabels!);
    expect(policy.metadata?.namespace).toBe(app.metadata?.namespace);
    expect(entry.metadata?.namespace).toBe(app.metadata?.namespace);
  });
});
