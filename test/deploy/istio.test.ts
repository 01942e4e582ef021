import type { IServiceEntry } from "@kubernetes-models/istio/networking.istio.io/v1/ServiceEntry";
import type { IAuthorizationPolicy } from "@kubernetes-models/istio/security.istio.io/v1/AuthorizationPolicy";
import type { IDeployment } from "kubernetes-models/apps/v1/Deployment";
import type { IService } from "kubernetes-models/v1/Service";
import { describe, expect, it } from "vitest";
import { find, readYamlDocuments, render } from "./deploy-files.ts";
import { schemaProblems } from "./kube-schemas.ts";
import { containerEnv, pods, portNumber, role } from "./pod-specs.ts";

interface ExtensionProvider {
  name: string;
  envoyExtAuthzGrpc?: { service: string; port: number; timeout?: string; failOpen?: boolean };
}

describe("Istio variant of the example app: ext_authz through the pod's Gatehouse sidecar, checked once", () => {
  const [operator] = readYamlDocuments("deploy/k8s/istio/istio-operator.yaml");
  const objects = render("overlays/dev/example-app-istio");
  const policy = find(
    objects,
    "AuthorizationPolicy",
    "gatehouse-ext-authz",
  ) as unknown as IAuthorizationPolicy;
  const entry = find(objects, "ServiceEntry", "gatehouse-ext-authz") as unknown as IServiceEntry;
  const deployment = find(objects, "Deployment", "demo-app") as unknown as IDeployment;
  const pod = pods(objects).find((p) => p.owner.metadata.name === "demo-app")!;
  const sidecar = pod.spec.initContainers!.find((c) => role(c) === "sidecar")!;
  const app = pod.spec.containers.find((c) => c.name === "app")!;
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
    expect(sidecar.ports?.map((p) => p.containerPort)).toContain(grpc.port);
  });

  it("resolves the provider's service to 127.0.0.1, the sidecar in the same pod", () => {
    const grpc = providers[0]!.envoyExtAuthzGrpc!;
    expect(entry.spec!.hosts).toEqual([grpc.service]);
    expect(entry.spec!.endpoints?.map((e) => e.address)).toEqual(["127.0.0.1"]);
    expect(entry.spec!.ports?.map((p) => [p.number, p.protocol])).toEqual([[grpc.port, "GRPC"]]);
    expect(entry.spec!.resolution).toBe("STATIC");
    expect(entry.spec!.exportTo).toEqual(["."]);
  });

  it("sends every request of the injected pods to that provider with action CUSTOM", () => {
    expect(policy.apiVersion).toBe("security.istio.io/v1");
    expect(policy.spec!.action).toBe("CUSTOM");
    expect(policy.spec!.provider?.name).toBe(providers[0]!.name);
    expect(policy.spec!.rules).toEqual([{}]);
    expect(deployment.spec!.template.metadata?.labels).toMatchObject(policy.spec!.selector!.matchLabels!);
    for (const o of [policy, entry]) expect(o.metadata?.namespace).toBe(deployment.metadata?.namespace);
  });

  it("keeps the sidecar's proxy out of the path: the Service reaches the app itself, the proxy is pod-local", () => {
    const service = find(objects, "Service", "demo-app") as unknown as IService;
    expect(service.spec!.ports!.map((p) => portNumber(pod.spec, p.targetPort))).toEqual([8080]);
    expect(app.ports?.map((p) => p.containerPort)).toEqual([8080]);
    expect(app.env).toEqual([{ name: "LISTEN_HOST", value: "0.0.0.0" }]);
    expect(containerEnv(objects, pod, sidecar).GATEHOUSE_PROXY_LISTEN).toBe("127.0.0.1:7401");
    // No proxy-mode NetworkPolicy (it would close the app's port) and no proxy-mode label.
    expect(find(objects, "NetworkPolicy", "gatehouse-sidecar")).toBeUndefined();
    expect(deployment.spec!.template.metadata?.labels?.["gatehouse.dev/inject"]).toBe("ext-authz");
  });

  it("is the only variant with an AuthorizationPolicy: the proxy-mode example is not checked twice either", () => {
    for (const dir of ["overlays/dev/example-app", "overlays/production/example-app"]) {
      expect(
        render(dir).filter((o) => o.kind === "AuthorizationPolicy"),
        dir,
      ).toEqual([]);
    }
  });
});
