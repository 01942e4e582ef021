import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import type { IPodMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PodMonitor";
import type { IServiceMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor";
import type { IDeployment } from "kubernetes-models/apps/v1/Deployment";
import type { INetworkPolicy } from "kubernetes-models/networking.k8s.io/v1/NetworkPolicy";
import type { IConfigMap } from "kubernetes-models/v1/ConfigMap";
import type { IService } from "kubernetes-models/v1/Service";
import { afterAll, describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { compilePolicy } from "../../services/sidecar/policy/index.ts";
import { find, idOf, K8S, readRepoFile, render } from "./deploy-files.ts";
import { schemaProblems } from "./kube-schemas.ts";
import { containerEnv, pods, portNumber, role } from "./pod-specs.ts";
import { type KubeObject, renderKustomization } from "./render-kustomize.ts";

const PROMETHEUS_PEER = {
  namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "monitoring" } },
  podSelector: { matchLabels: { "app.kubernetes.io/name": "prometheus" } },
};

describe.each(["overlays/dev/example-app", "overlays/production/example-app"])(
  "example app with the sidecar injected by label (proxy mode): %s",
  (dir) => {
    const objects = render(dir);
    const deployment = find(objects, "Deployment", "demo-app") as unknown as IDeployment;
    const pod = pods(objects).find((p) => p.owner === (deployment as unknown as KubeObject))!;
    const sidecar = pod.spec.initContainers?.find((c) => role(c) === "sidecar");
    const app = pod.spec.containers.find((c) => c.name === "app")!;
    const env = containerEnv(objects, pod, sidecar!);

    it("runs the sidecar as a native sidecar: an init container with restartPolicy Always", () => {
      expect(sidecar).toBeDefined();
      expect(sidecar!.restartPolicy).toBe("Always");
      expect(sidecar!.ports?.map((p) => p.containerPort)).toEqual([7401, 7402]);
      // Sized from the bundled sidecar's measured idle RSS (about 64 MB, 72 MB following Redis) and
      // room for a million revocation entries under the limit, see the component.
      expect(sidecar!.resources).toEqual({
        requests: { cpu: "50m", memory: "96Mi" },
        limits: { cpu: "500m", memory: "384Mi" },
      });
      expect(sidecar!.env?.find((e) => e.name === "REDIS_URL")?.valueFrom?.secretKeyRef).toEqual({
        name: "gatehouse-sidecar",
        key: "redis-url",
      });
    });

    it("was added by the component: the app's own manifests carry a label, not a sidecar", () => {
      const own = find(render("example-app/app"), "Deployment", "demo-app") as unknown as IDeployment;
      expect(own.metadata?.labels?.["gatehouse.dev/inject"]).toBe("proxy");
      expect(own.spec!.template.spec!.initContainers).toBeUndefined();
      expect(own.spec!.template.spec!.volumes!.map((v) => v.name)).not.toContain("gatehouse-policy");
    });

    it("keeps the app on 127.0.0.1, reachable only through the sidecar's proxy port", () => {
      expect(app.ports).toBeUndefined();
      expect(app.env).toEqual([{ name: "LISTEN_HOST", value: "127.0.0.1" }]);
      expect(app.args?.join(" ")).toContain("listen(8080, process.env.LISTEN_HOST)");
      expect(env.GATEHOUSE_UPSTREAM).toBe("http://127.0.0.1:8080");
      const service = find(objects, "Service", "demo-app") as unknown as IService;
      expect(deployment.spec!.template.metadata?.labels).toMatchObject(service.spec!.selector!);
      // A number: Services resolve native sidecars' named ports only from Kubernetes 1.32 on.
      expect(service.spec!.ports!.map((p) => p.targetPort)).toEqual([7401]);
    });

    it("lets other pods reach 7401 only, and Prometheus 7402", () => {
      const policy = find(objects, "NetworkPolicy", "gatehouse-sidecar") as unknown as INetworkPolicy;
      expect(deployment.spec!.template.metadata?.labels).toMatchObject(
        policy.spec!.podSelector!.matchLabels!,
      );
      expect(policy.spec!.policyTypes).toEqual(["Ingress"]);
      expect(policy.spec!.ingress).toEqual([
        { ports: [{ port: 7401, protocol: "TCP" }] },
        { from: [PROMETHEUS_PEER], ports: [{ port: 7402, protocol: "TCP" }] },
      ]);
    });

    it("reads the policy named after the app from gatehouse-policy, mounted as a directory so edits reload", () => {
      const file = env.GATEHOUSE_POLICY_FILE!;
      expect(file).toBe("/etc/gatehouse/policy/demo-app.yaml");
      const mount = sidecar!.volumeMounts!.find((m) => file.startsWith(`${m.mountPath}/`))!;
      expect(mount.subPath).toBeUndefined();
      const volume = pod.spec.volumes!.find((v) => v.name === mount.name)!;
      const cm = find(objects, "ConfigMap", volume.configMap!.name!) as unknown as IConfigMap;
      const text = cm.data![file.slice(mount.mountPath.length + 1)]!;
      const policy = compilePolicy(text, "policy.yaml");
      expect(policy.match({ method: "GET", path: "/healthz" }).public).toBe(true);
      expect(policy.match({ method: "GET", path: "/api/items" }).requirement.scopes).toEqual({
        anyOf: ["demo:read", "demo:admin"],
      });
      expect(text).toBe(readRepoFile("deploy/compose/policy.yaml"));
    });

    it("probes the app through the sidecar, since the kubelet cannot reach 127.0.0.1", () => {
      expect(portNumber(pod.spec, app.readinessProbe?.httpGet?.port)).toBe(7401);
    });

    it("reads the JWKS from the token service's Service, shares settings through a generated ConfigMap", () => {
      const url = new URL(env.GATEHOUSE_TOKEN_SERVICE_URL!);
      const [service, namespace] = url.hostname.split(".");
      const target = find(
        render(dir.replace("/example-app", "")),
        "Service",
        service!,
      ) as unknown as IService & KubeObject;
      expect(target.metadata.namespace).toBe(namespace);
      expect(target.spec!.ports!.find((p) => p.name === "http")?.port).toBe(Number(url.port));
      expect(sidecar!.envFrom!.map((e) => e.configMapRef!.name!.replace(/-[a-z0-9]{10}$/, ""))).toEqual([
        "gatehouse-issuer",
        "gatehouse-sidecar",
      ]);
      expect(env.GATEHOUSE_FAIL_MODE).toBe("closed");
    });

    it("gives the app a projected service-account token and no API token", () => {
      expect(pod.spec.serviceAccountName).toBe("demo-app");
      expect(find(objects, "ServiceAccount", "demo-app")).toMatchObject({
        automountServiceAccountToken: false,
      });
      const mount = app.volumeMounts!.find((m) => m.name === "gatehouse-token")!;
      expect(mount.readOnly).toBe(true);
      const [source] = pod.spec.volumes!.find((v) => v.name === mount.name)!.projected!.sources!;
      expect(source!.serviceAccountToken).toMatchObject({ expirationSeconds: 3600, path: "token" });
    });
  },
);

/** An app nobody wrote for Gatehouse, in a folder outside the repository, listing the component. */
describe("any app is injected by its label alone", () => {
  const scratch = mkdtempSync(join(tmpdir(), "gatehouse-inject-"));
  afterAll(() => rmSync(scratch, { recursive: true, force: true }));
  const app = (name: string, labels: string, annotations = "{}") => `
apiVersion: apps/v1
kind: Deployment
metadata: { name: ${name}, labels: { ${labels} } }
spec:
  selector: { matchLabels: { app: ${name} } }
  template:
    metadata:
      labels: { app: ${name}, app.kubernetes.io/name: ${name} }
      annotations: ${annotations}
    spec:
      initContainers: [{ name: setup, image: busybox }]
      containers: [{ name: main, image: shop:1, env: [{ name: MODE, value: web }] }]
      volumes: [{ name: data, emptyDir: {} }]
`;
  writeFileSync(
    join(scratch, "apps.yaml"),
    [
      app("orders", "gatehouse.dev/inject: proxy", "{ gatehouse.dev/upstream: 'h2c://127.0.0.1:9000' }"),
      app("reports", "team: data"),
      `
apiVersion: v1
kind: Service
metadata: { name: orders, labels: { gatehouse.dev/inject: proxy } }
spec:
  selector: { app: orders }
  ports: [{ name: grpc, port: 9000, targetPort: 9000 }, { name: debug, port: 9999, targetPort: 9999 }]
---
apiVersion: v1
kind: Service
metadata: { name: reports }
spec:
  selector: { app: reports }
  ports: [{ name: http, port: 80, targetPort: 8080 }]
`,
    ].join("---"),
  );
  writeFileSync(
    join(scratch, "kustomization.yaml"),
    `namespace: shop
resources: [apps.yaml]
components:
  - ${relative(scratch, join(K8S, "components/sidecar"))}
  - ${relative(scratch, join(K8S, "overlays/dev/issuer"))}
`,
  );
  const objects = renderKustomization(scratch);
  const deployment = (name: string) => find(objects, "Deployment", name) as unknown as IDeployment;
  const service = (name: string) => find(objects, "Service", name) as unknown as IService;

  it("renders the same with kubectl kustomize", () => {
    const r = spawnSync("kubectl", ["kustomize", scratch], { encoding: "utf8" });
    expect(r.error, "kubectl is needed to cross-check the renderer (/usr/bin/kubectl)").toBeUndefined();
    expect(r.stderr).toBe("");
    const theirs = parseAllDocuments(r.stdout).map((d) => d.toJS() as KubeObject);
    const byId = (list: KubeObject[]) => new Map(list.map((o) => [idOf(o), o]));
    expect(byId(objects)).toEqual(byId(theirs));
  });

  it("adds the sidecar and its volumes to the labelled Deployment, beside what the app had", () => {
    const spec = deployment("orders").spec!.template.spec!;
    expect(spec.initContainers!.map((c) => c.name)).toEqual(["gatehouse-sidecar", "setup"]);
    expect(spec.containers).toEqual([
      { name: "main", image: "shop:1", env: [{ name: "MODE", value: "web" }] },
    ]);
    expect(spec.volumes!.map((v) => v.name).sort()).toEqual(["data", "gatehouse-policy", "gatehouse-tmp"]);
    expect(deployment("orders").spec!.template.metadata!.labels!["gatehouse.dev/inject"]).toBe("proxy");
    const pod = pods(objects).find((p) => p.owner.metadata.name === "orders")!;
    const env = containerEnv(objects, pod, spec.initContainers![0]!);
    expect(env.GATEHOUSE_UPSTREAM).toBe("h2c://127.0.0.1:9000");
    expect(env.GATEHOUSE_AUDIENCES).toBe("");
    expect(env.GATEHOUSE_POLICY_FILE).toBe("/etc/gatehouse/policy/orders.yaml");
    for (const o of objects) expect(schemaProblems(o), idOf(o)).toBe("");
  });

  it("leaves unlabelled Deployments and Services alone", () => {
    expect(deployment("reports").spec!.template.spec!.initContainers).toEqual([
      { name: "setup", image: "busybox" },
    ]);
    expect(service("reports").spec!.ports![0]!.targetPort).toBe(8080);
  });

  it("sends the labelled Service's first port to the proxy and keeps the others", () => {
    expect(service("orders").spec!.ports!.map((p) => [p.name, p.targetPort])).toEqual([
      ["grpc", 7401],
      ["debug", 9999],
    ]);
  });

  it("brings its settings ConfigMap, hash-suffixed, and the NetworkPolicy into the app's namespace", () => {
    const maps = objects.filter((o) => o.kind === "ConfigMap");
    expect(maps.map((o) => o.metadata.name.replace(/-[a-z0-9]{10}$/, "")).sort()).toEqual([
      "gatehouse-issuer",
      "gatehouse-sidecar",
    ]);
    for (const cm of maps) expect(cm.metadata.namespace).toBe("shop");
    const sidecar = deployment("orders").spec!.template.spec!.initContainers![0]!;
    expect(sidecar.envFrom!.map((e) => e.configMapRef!.name).sort()).toEqual(
      maps.map((o) => o.metadata.name).sort(),
    );
    expect(find(objects, "NetworkPolicy", "gatehouse-sidecar")?.metadata.namespace).toBe("shop");
  });
});

describe("Prometheus Operator monitors (components/monitoring, in overlays/production)", () => {
  const objects = render("overlays/production");
  const serviceMonitor = find(
    objects,
    "ServiceMonitor",
    "gatehouse-token-service",
  ) as unknown as IServiceMonitor;
  const podMonitor = find(objects, "PodMonitor", "gatehouse-sidecar") as unknown as IPodMonitor;

  it("validate against the operator's schema", () => {
    for (const monitor of [serviceMonitor, podMonitor]) {
      expect(monitor.apiVersion).toBe("monitoring.coreos.com/v1");
      expect(schemaProblems(monitor as never)).toBe("");
    }
  });

  it("scrape the token service's /metrics on the admin Service, port 7490", () => {
    const admin = objects.find(
      (o) =>
        o.kind === "Service" &&
        Object.entries(serviceMonitor.spec.selector.matchLabels!).every(
          ([k, v]) => (o.metadata.labels as Record<string, string>)[k] === v,
        ),
    ) as unknown as IService & KubeObject;
    expect(admin.metadata.name).toBe("gatehouse-token-service-admin");
    const [endpoint] = serviceMonitor.spec.endpoints!;
    expect(endpoint!.path).toBe("/metrics");
    const port = admin.spec!.ports!.find((p) => p.name === endpoint!.port)!;
    const pod = pods(objects).find((p) => p.owner.metadata.name === "gatehouse-token-service")!;
    expect(portNumber(pod.spec, port.targetPort)).toBe(7490);
  });

  it("scrape every injected sidecar's control port, in every namespace", () => {
    expect(podMonitor.spec.namespaceSelector).toEqual({ any: true });
    expect(podMonitor.spec.selector.matchExpressions).toEqual([
      { key: "gatehouse.dev/inject", operator: "Exists" },
    ]);
    expect(podMonitor.spec.podMetricsEndpoints).toEqual([
      { portNumber: 7402, path: "/metrics", interval: "30s" },
    ]);
    for (const dir of ["overlays/production/example-app", "overlays/dev/example-app-istio"]) {
      const demo = find(render(dir), "Deployment", "demo-app") as unknown as IDeployment;
      expect(demo.spec!.template.metadata!.labels!["gatehouse.dev/inject"], dir).toBeDefined();
      const sidecar = demo.spec!.template.spec!.initContainers!.find((c) => role(c) === "sidecar")!;
      expect(
        sidecar.ports!.map((p) => p.containerPort),
        dir,
      ).toContain(7402);
    }
  });
});
