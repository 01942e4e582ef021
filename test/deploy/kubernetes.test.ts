import { join } from "node:path";
import type { IDeployment } from "kubernetes-models/apps/v1/Deployment";
import type { IHorizontalPodAutoscaler } from "kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler";
import type { IJob } from "kubernetes-models/batch/v1/Job";
import type { INetworkPolicy } from "kubernetes-models/networking.k8s.io/v1/NetworkPolicy";
import type { IPodDisruptionBudget } from "kubernetes-models/policy/v1/PodDisruptionBudget";
import type { IConfigMap } from "kubernetes-models/v1/ConfigMap";
import type { IContainer } from "kubernetes-models/v1/Container";
import type { IPodSpec } from "kubernetes-models/v1/PodSpec";
import type { IPodTemplateSpec } from "kubernetes-models/v1/PodTemplateSpec";
import type { IProbe } from "kubernetes-models/v1/Probe";
import type { ISecret } from "kubernetes-models/v1/Secret";
import type { IService } from "kubernetes-models/v1/Service";
import { describe, expect, it } from "vitest";
import { compilePolicy } from "../../services/sidecar/policy/index.ts";
import {
  find,
  idOf,
  K8S,
  kustomizationDirs,
  readRepoFile,
  readYamlDocuments,
  render,
} from "./deploy-files.ts";
import { schemaProblems } from "./kube-schemas.ts";
import { type KubeObject, loadKustomization } from "./render-kustomize.ts";

const DIRS = kustomizationDirs();
const OVERLAYS = ["overlays/dev", "overlays/production"];
const TOKEN = "gatehouse-token-service";
const SECRET_ENV = ["DATABASE_URL", "GATEHOUSE_MASTER_KEY", "REDIS_URL"];

interface Pod {
  id: string;
  owner: KubeObject;
  template: IPodTemplateSpec;
  spec: IPodSpec;
}

function pods(objects: KubeObject[]): Pod[] {
  return objects
    .filter((o) => o.kind === "Deployment" || o.kind === "Job")
    .map((o) => {
      const template = (o as unknown as IDeployment | IJob).spec!.template as IPodTemplateSpec;
      return { id: idOf(o), owner: o, template, spec: template.spec! };
    });
}

function containersOf(spec: IPodSpec): IContainer[] {
  return [...(spec.initContainers ?? []), ...spec.containers];
}

/** Runs for the pod's lifetime: regular containers, and init containers that are native sidecars. */
function longRunning(pod: Pod): IContainer[] {
  if (pod.owner.kind === "Job") return [];
  return [
    ...(pod.spec.initContainers ?? []).filter((c) => c.restartPolicy === "Always"),
    ...pod.spec.containers,
  ];
}

/** The Gatehouse role a container runs (`serve`, `sidecar`, `migrate`), if it runs one. */
function role(c: IContainer): string | undefined {
  return c.command === undefined ? c.args?.[0] : undefined;
}

function portNumber(spec: IPodSpec, port: number | string | undefined): number | undefined {
  if (typeof port === "number") return port;
  for (const c of containersOf(spec)) {
    const hit = c.ports?.find((p) => p.name === port);
    if (hit) return hit.containerPort;
  }
  return undefined;
}

function probePath(probe: IProbe | undefined): string | undefined {
  return probe?.httpGet?.path;
}

function secretRefs(objects: KubeObject[]): { namespace: string; name: string; key: string }[] {
  return pods(objects).flatMap((pod) =>
    containersOf(pod.spec).flatMap((c) =>
      (c.env ?? []).flatMap((e) => {
        const ref = e.valueFrom?.secretKeyRef;
        return ref
          ? [{ namespace: pod.owner.metadata.namespace ?? "", name: ref.name ?? "", key: ref.key }]
          : [];
      }),
    ),
  );
}

function gatehouseImages(objects: KubeObject[]): string[] {
  return pods(objects).flatMap((pod) =>
    containersOf(pod.spec)
      .map((c) => c.image ?? "")
      .filter((image) => /(^|\/)gatehouse([:@]|$)/.test(image)),
  );
}

describe("every kustomization renders and every object matches its Kubernetes schema", () => {
  it("finds the kustomizations (base, example app, migrate, namespace, overlays, istio)", () => {
    expect(DIRS).toEqual(
      expect.arrayContaining([
        "base",
        "clients",
        "example-app",
        "istio",
        "migrate",
        "namespace",
        "overlays/dev",
        "overlays/dev/clients",
        "overlays/dev/migrate",
        "overlays/production",
        "overlays/production/clients",
        "overlays/production/migrate",
      ]),
    );
  });

  it.each(DIRS)("%s", (dir) => {
    const objects = render(dir);
    expect(objects.length).toBeGreaterThan(0);
    const problems = objects.map((o) => [idOf(o), schemaProblems(o)]).filter(([, p]) => p !== "");
    expect(problems).toEqual([]);
    const ids = objects.map(idOf);
    expect(new Set(ids).size, "duplicate objects").toBe(ids.length);
  });

  it("reports fields the schema does not define (the check above would catch a typo)", () => {
    const deployment = structuredClone(find(render("base"), "Deployment", TOKEN)!) as unknown as IDeployment;
    const container = deployment.spec!.template.spec!.containers[0]!;
    Object.assign(container.securityContext!, { readOnlyRootFileSystem: true });
    Object.assign(deployment.spec!, { replica: 2 });
    expect(schemaProblems(deployment)).toBe(
      "fields not in the schema: " +
        "/spec/template/spec/containers/0/securityContext/readOnlyRootFileSystem, /spec/replica",
    );
    Object.assign(container, { imagePullPolicy: "Sometimes" });
    expect(schemaProblems(deployment)).toMatch(/imagePullPolicy must be equal to one of the allowed values/);
  });
});

describe.each(DIRS.filter((d) => pods(render(d)).length > 0))("pod security and resources: %s", (dir) => {
  const all = pods(render(dir));

  it.each(all.map((p) => [p.id, p] as const))("%s runs restricted", (_id, pod) => {
    const psc = pod.spec.securityContext ?? {};
    expect(psc.runAsNonRoot).toBe(true);
    expect(psc.seccompProfile?.type).toBe("RuntimeDefault");
    expect(pod.spec.automountServiceAccountToken).toBe(false);
    expect(pod.spec.enableServiceLinks).toBe(false);
    expect(pod.spec.hostNetwork ?? false).toBe(false);
    expect(pod.spec.hostPID ?? false).toBe(false);
    for (const c of containersOf(pod.spec)) {
      const sc = c.securityContext ?? {};
      const where = `${pod.id} container ${c.name}`;
      expect(sc.runAsNonRoot ?? psc.runAsNonRoot, where).toBe(true);
      expect(sc.runAsUser ?? psc.runAsUser ?? 10001, where).toBeGreaterThan(0);
      expect(sc.readOnlyRootFilesystem, where).toBe(true);
      expect(sc.allowPrivilegeEscalation, where).toBe(false);
      expect(sc.privileged ?? false, where).toBe(false);
      expect(sc.capabilities?.drop, where).toContain("ALL");
      expect(sc.capabilities?.add ?? [], where).toEqual([]);
      expect((sc.seccompProfile ?? psc.seccompProfile)?.type, where).toBe("RuntimeDefault");
      for (const kind of ["requests", "limits"] as const) {
        expect(c.resources?.[kind]?.cpu, `${where} ${kind}.cpu`).toBeDefined();
        expect(c.resources?.[kind]?.memory, `${where} ${kind}.memory`).toBeDefined();
      }
      // The read-only root's one writable place: /tmp on an emptyDir.
      const tmp = c.volumeMounts?.find((m) => m.mountPath === "/tmp");
      expect(tmp, `${where} mounts /tmp`).toBeDefined();
      expect(pod.spec.volumes?.find((v) => v.name === tmp!.name)?.emptyDir, where).toBeDefined();
    }
  });

  it.each(all.map((p) => [p.id, p] as const))("%s has probes on /readyz and /healthz", (_id, pod) => {
    for (const c of longRunning(pod)) {
      const where = `${pod.id} container ${c.name}`;
      expect(c.readinessProbe?.httpGet, where).toBeDefined();
      expect(c.livenessProbe?.httpGet, where).toBeDefined();
      for (const probe of [c.readinessProbe, c.livenessProbe, c.startupProbe]) {
        if (probe?.httpGet) expect(portNumber(pod.spec, probe.httpGet.port), where).toBeDefined();
      }
      if (role(c) === "serve" || role(c) === "sidecar") {
        const port = role(c) === "serve" ? 7480 : 7402;
        expect(probePath(c.readinessProbe), where).toBe("/readyz");
        expect(probePath(c.livenessProbe), where).toBe("/healthz");
        expect(probePath(c.startupProbe), where).toBe("/healthz");
        for (const probe of [c.readinessProbe, c.livenessProbe, c.startupProbe]) {
          expect(portNumber(pod.spec, probe?.httpGet?.port), where).toBe(port);
        }
      }
    }
  });

  it.each(all.map((p) => [p.id, p] as const))("%s references its secrets, never inlines them", (_id, pod) => {
    for (const c of containersOf(pod.spec)) {
      for (const e of c.env ?? []) {
        if (SECRET_ENV.includes(e.name)) {
          expect(e.value, `${pod.id} ${c.name} ${e.name}`).toBeUndefined();
          expect(e.valueFrom?.secretKeyRef, `${pod.id} ${c.name} ${e.name}`).toBeDefined();
        }
        // No credentials in a literal value (scheme://user:password@host).
        expect(e.value ?? "", `${pod.id} ${c.name} ${e.name}`).not.toMatch(/:\/\/[^/\s@]*:[^/\s@]*@/);
      }
    }
  });

  it.each(all.filter((p) => p.owner.kind === "Deployment").map((p) => [p.id, p] as const))(
    "%s is scraped by Prometheus",
    (_id, pod) => {
      const a = pod.template.metadata?.annotations ?? {};
      expect(a["prometheus.io/scrape"]).toBe("true");
      expect(a["prometheus.io/path"]).toBe("/metrics");
      const declared = containersOf(pod.spec).flatMap((c) => (c.ports ?? []).map((p) => p.containerPort));
      expect(declared).toContain(Number(a["prometheus.io/port"]));
    },
  );
});

describe("no Secret is rendered; every one referenced is described in secret.example.yaml", () => {
  const examples = readYamlDocuments("deploy/k8s/secret.example.yaml") as unknown as (ISecret & KubeObject)[];

  it("renders no Secret and no secret-looking ConfigMap entry anywhere", () => {
    for (const dir of DIRS) {
      const objects = render(dir);
      expect(objects.filter((o) => o.kind === "Secret").map(idOf), dir).toEqual([]);
      for (const cm of objects.filter((o) => o.kind === "ConfigMap") as unknown as IConfigMap[]) {
        for (const [key, value] of Object.entries(cm.data ?? {})) {
          expect(key, `${dir} ${cm.metadata?.name}`).not.toMatch(
            /PASSWORD|SECRET|MASTER_KEY|DATABASE_URL|REDIS_URL/i,
          );
          expect(value, `${dir} ${cm.metadata?.name}.${key}`).not.toMatch(/:\/\/[^/\s@]*:[^/\s@]*@/);
        }
      }
    }
  });

  it("keeps secret.example.yaml out of every kustomization", () => {
    for (const dir of DIRS) {
      const { resources = [] } = loadKustomization(join(K8S, dir)) as { resources?: string[] };
      expect(
        resources.filter((r) => r.includes("secret")),
        dir,
      ).toEqual([]);
    }
  });

  it("describes every secret key the manifests read, with placeholders only", () => {
    for (const dir of DIRS) {
      for (const ref of secretRefs(render(dir))) {
        const secret = examples.find(
          (s) => s.metadata.name === ref.name && s.metadata.namespace === ref.namespace,
        );
        expect(secret, `${dir}: Secret ${ref.namespace}/${ref.name}`).toBeDefined();
        expect(Object.keys(secret!.stringData ?? {}), `${dir}: ${ref.name}.${ref.key}`).toContain(ref.key);
      }
    }
    for (const secret of examples) {
      for (const value of Object.values(secret.stringData ?? {})) expect(value).toMatch(/REPLACE_ME/);
    }
  });
});

describe("token service", () => {
  const deployment = (dir: string) => find(render(dir), "Deployment", TOKEN) as unknown as IDeployment;
  const container = (dir: string) => deployment(dir).spec!.template.spec!.containers[0]!;
  const hpa = (dir: string) =>
    find(render(dir), "HorizontalPodAutoscaler", TOKEN) as unknown as IHorizontalPodAutoscaler | undefined;

  it("runs `gatehouse serve` with gRPC on 7400 and HTTP on 7480, behind a Service with appProtocol grpc", () => {
    const c = container("base");
    expect(c.args).toEqual(["serve"]);
    expect(c.ports?.map((p) => [p.name, p.containerPort])).toEqual([
      ["grpc", 7400],
      ["http", 7480],
    ]);
    const service = find(render("base"), "Service", TOKEN) as unknown as IService;
    expect(service.spec?.ports?.map((p) => [p.name, p.port, p.targetPort, p.appProtocol])).toEqual([
      ["grpc", 7400, "grpc", "grpc"],
      ["http", 7480, "http", "http"],
    ]);
    expect(deployment("base").spec!.template.metadata?.labels).toMatchObject(service.spec!.selector!);
    expect(deployment("base").spec!.strategy?.rollingUpdate?.maxUnavailable).toBe(0);
  });

  it("is sized from the benchmarks: requests 250m/256Mi, limits 1 CPU/512Mi; Guaranteed in production", () => {
    expect(container("base").resources).toEqual({
      requests: { cpu: "250m", memory: "256Mi" },
      limits: { cpu: "1", memory: "512Mi" },
    });
    const production = container("overlays/production").resources!;
    expect(production.requests).toEqual(production.limits);
    expect(production.limits).toEqual({ cpu: "1", memory: "512Mi" });
  });

  it("leaves the replica count to an autoscaler of 2 or more (3 or more in production), 1 replica in dev", () => {
    for (const [dir, least] of [
      ["base", 2],
      ["overlays/production", 3],
    ] as const) {
      expect(deployment(dir).spec!.replicas, dir).toBeUndefined();
      const h = hpa(dir)!;
      expect(h.apiVersion).toBe("autoscaling/v2");
      expect(h.spec!.scaleTargetRef).toEqual({ apiVersion: "apps/v1", kind: "Deployment", name: TOKEN });
      expect(h.spec!.minReplicas, dir).toBeGreaterThanOrEqual(least);
      expect(h.spec!.maxReplicas).toBeGreaterThan(h.spec!.minReplicas!);
      expect(h.spec!.metrics?.[0]?.resource?.name).toBe("cpu");
    }
    expect(deployment("overlays/dev").spec!.replicas).toBe(1);
    expect(hpa("overlays/dev")).toBeUndefined();
  });

  it("has a PodDisruptionBudget over its pods that allows draining one at a time", () => {
    for (const dir of OVERLAYS) {
      const pdb = find(render(dir), "PodDisruptionBudget", TOKEN) as unknown as IPodDisruptionBudget;
      expect(pdb.spec!.maxUnavailable).toBe(1);
      expect(deployment(dir).spec!.template.metadata?.labels).toMatchObject(pdb.spec!.selector!.matchLabels!);
    }
  });

  it("reads DATABASE_URL, GATEHOUSE_MASTER_KEY and REDIS_URL from its Secret, and its issuer per overlay", () => {
    const env = Object.fromEntries((container("base").env ?? []).map((e) => [e.name, e.valueFrom]));
    expect(env.DATABASE_URL?.secretKeyRef).toEqual({ name: TOKEN, key: "database-url" });
    expect(env.GATEHOUSE_MASTER_KEY?.secretKeyRef).toEqual({ name: TOKEN, key: "master-key" });
    expect(env.REDIS_URL?.secretKeyRef).toEqual({ name: TOKEN, key: "redis-url" });
    const issuer = (dir: string) =>
      (find(render(dir), "ConfigMap", TOKEN) as unknown as IConfigMap).data!.GATEHOUSE_ISSUER;
    expect(issuer("overlays/production")).toMatch(/^https:\/\//);
  });

  it("is reachable on 7400 and 7480 only", () => {
    const policy = find(render("base"), "NetworkPolicy", TOKEN) as unknown as INetworkPolicy;
    expect(policy.spec!.policyTypes).toEqual(["Ingress"]);
    const ports = policy.spec!.ingress!.flatMap((r) => r.ports!.map((p) => p.port));
    expect(ports.sort()).toEqual([7400, 7480]);
  });
});

describe("migration Job", () => {
  it("runs `gatehouse migrate` once, with DATABASE_URL from the Secret", () => {
    const job = find(render("migrate"), "Job", "gatehouse-migrate") as unknown as IJob;
    const pod = job.spec!.template.spec!;
    expect(pod.restartPolicy).toBe("Never");
    expect(job.spec!.backoffLimit).toBeLessThanOrEqual(6);
    expect(pod.containers.map((c) => c.args)).toEqual([["migrate"]]);
    expect(pod.containers[0]!.env).toEqual([
      { name: "DATABASE_URL", valueFrom: { secretKeyRef: { name: TOKEN, key: "database-url" } } },
    ]);
    expect(job.metadata?.annotations?.["argocd.argoproj.io/hook"]).toBe("PreSync");
  });

  it.each(OVERLAYS)("uses the same image as the token service in %s", (dir) => {
    const app = new Set(gatehouseImages(render(dir)));
    const migrate = new Set(gatehouseImages(render(`${dir}/migrate`)));
    expect(app.size).toBe(1);
    expect(migrate).toEqual(app);
  });
});

describe("clients-apply Job", () => {
  it("applies the ConfigMap's clients file once, on the database, with client secrets from a Secret", async () => {
    const objects = render("clients");
    const job = find(objects, "Job", "gatehouse-clients-apply") as unknown as IJob;
    const pod = job.spec!.template.spec!;
    expect(pod.restartPolicy).toBe("Never");
    const container = pod.containers[0]!;
    expect(container.args).toEqual([
      "clients",
      "apply",
      "-f",
      "/etc/gatehouse/clients.yaml",
      "--direct",
      "--prune",
    ]);
    const mount = container.volumeMounts!.find((m) => m.mountPath === "/etc/gatehouse")!;
    const configMap = pod.volumes!.find((v) => v.name === mount.name)!.configMap!.name!;
    const cm = find(objects, "ConfigMap", configMap) as unknown as IConfigMap;
    // The file in the ConfigMap is one `clients apply` accepts, each secret_from_env set by the Job.
    const { parseClientsFile } = await import("../../services/token/clients-file/clients-file.ts");
    const env = Object.fromEntries((container.env ?? []).map((e) => [e.name, "x".repeat(40)]));
    const clients = parseClientsFile(cm.data!["clients.yaml"]!, {
      path: "clients.yaml",
      env,
      maxAccessTokenTtlSeconds: 3600,
    });
    expect(clients.length).toBeGreaterThan(0);
    for (const e of container.env ?? []) {
      if (e.name !== "DATABASE_URL")
        expect(e.valueFrom?.secretKeyRef?.name, e.name).toBe("gatehouse-client-secrets");
    }
  });

  it.each(OVERLAYS)("uses the same image as the token service in %s", (dir) => {
    expect(new Set(gatehouseImages(render(`${dir}/clients`)))).toEqual(new Set(gatehouseImages(render(dir))));
  });
});

describe("images", () => {
  it("are pinned in production: a registry, a version tag or a digest, never latest", () => {
    for (const image of gatehouseImages(render("overlays/production"))) {
      expect(image).toMatch(/^[a-z0-9.-]+\.[a-z]+(:\d+)?\//);
      expect(image).toMatch(/(:\d+\.\d+\.\d+([-+][\w.]+)?|@sha256:[0-9a-f]{64})$/);
      expect(image).not.toMatch(/:latest$/);
    }
  });
});

describe("namespaces", () => {
  it("enforce the restricted Pod Security Standard", () => {
    for (const dir of DIRS) {
      for (const ns of render(dir).filter((o) => o.kind === "Namespace")) {
        expect((ns.metadata.labels as Record<string, string>)["pod-security.kubernetes.io/enforce"]).toBe(
          "restricted",
        );
      }
    }
  });
});

describe("example app with the Gatehouse sidecar", () => {
  const objects = render("overlays/dev");
  const deployment = find(objects, "Deployment", "demo-app") as unknown as IDeployment;
  const pod = deployment.spec!.template.spec!;
  const sidecar = pod.initContainers?.find((c) => role(c) === "sidecar");
  const app = pod.containers.find((c) => c.name === "app")!;
  const env = (name: string) => sidecar?.env?.find((e) => e.name === name);

  it("runs the sidecar as a native sidecar: an init container with restartPolicy Always", () => {
    expect(sidecar).toBeDefined();
    expect(sidecar!.restartPolicy).toBe("Always");
    expect(sidecar!.ports?.map((p) => p.containerPort)).toEqual([7401, 7402]);
    // Sized from the bundled sidecar's measured idle RSS (about 64 MB, 72 MB following Redis) and
    // room for a million revocation entries under the limit, see the manifest.
    expect(sidecar!.resources).toEqual({
      requests: { cpu: "50m", memory: "96Mi" },
      limits: { cpu: "500m", memory: "384Mi" },
    });
    expect(env("REDIS_URL")?.valueFrom?.secretKeyRef).toEqual({
      name: "gatehouse-sidecar",
      key: "redis-url",
    });
  });

  it("keeps the app on 127.0.0.1, reachable only through the sidecar's proxy port", () => {
    expect(app.ports).toBeUndefined();
    expect(env("GATEHOUSE_UPSTREAM")?.value).toBe("http://127.0.0.1:8080");
    expect([...(app.command ?? []), ...(app.args ?? [])].join(" ")).toContain('listen(8080, "127.0.0.1")');
    const service = find(objects, "Service", "demo-app") as unknown as IService;
    expect(deployment.spec!.template.metadata?.labels).toMatchObject(service.spec!.selector!);
    expect(service.spec!.ports!.map((p) => portNumber(pod, p.targetPort))).toEqual([7401]);
  });

  it("lets other pods reach 7401 only (7402 from the monitoring namespace, for metrics)", () => {
    const policy = find(objects, "NetworkPolicy", "demo-app") as unknown as INetworkPolicy;
    expect(deployment.spec!.template.metadata?.labels).toMatchObject(policy.spec!.podSelector!.matchLabels!);
    expect(policy.spec!.policyTypes).toEqual(["Ingress"]);
    for (const rule of policy.spec!.ingress!) {
      const ports = rule.ports?.map((p) => p.port);
      expect(ports, "a rule without ports opens every port").toBeDefined();
      if (rule.from === undefined || rule.from.length === 0) expect(ports).toEqual([7401]);
      else expect(ports).toEqual([7402]);
      for (const peer of rule.from ?? []) expect(peer.namespaceSelector?.matchLabels).toBeDefined();
    }
  });

  it("mounts a route policy that compiles (the same as compose's), as a directory so edits reload", () => {
    const file = env("GATEHOUSE_POLICY_FILE")?.value ?? "";
    const mount = sidecar!.volumeMounts!.find((m) => file.startsWith(`${m.mountPath}/`))!;
    expect(mount.subPath).toBeUndefined();
    const volume = pod.volumes!.find((v) => v.name === mount.name)!;
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
    expect(portNumber(pod, app.readinessProbe?.httpGet?.port)).toBe(7401);
  });

  it("gives the app a projected service-account token for the Gatehouse issuer, and no API token", () => {
    const tokenConfig = (find(objects, "ConfigMap", TOKEN) as unknown as IConfigMap).data!;
    expect(pod.serviceAccountName).toBe("demo-app");
    expect(find(objects, "ServiceAccount", "demo-app")).toMatchObject({
      automountServiceAccountToken: false,
    });
    const mount = app.volumeMounts!.find((m) => m.name === "gatehouse-token")!;
    expect(mount.readOnly).toBe(true);
    const volume = pod.volumes!.find((v) => v.name === mount.name)!;
    const [source] = volume.projected!.sources!;
    expect(source!.serviceAccountToken).toEqual({
      audience: tokenConfig.GATEHOUSE_ISSUER,
      expirationSeconds: 3600,
      path: "token",
    });
  });

  it("trusts the token service's issuer and reads the JWKS from its Service", () => {
    const sidecarConfig = (find(objects, "ConfigMap", "gatehouse-sidecar") as unknown as IConfigMap).data!;
    const tokenConfig = (find(objects, "ConfigMap", TOKEN) as unknown as IConfigMap).data!;
    expect(sidecar!.envFrom).toEqual([{ configMapRef: { name: "gatehouse-sidecar" } }]);
    expect(sidecarConfig.GATEHOUSE_ISSUER).toBe(tokenConfig.GATEHOUSE_ISSUER);
    const url = new URL(sidecarConfig.GATEHOUSE_TOKEN_SERVICE_URL!);
    const [service, namespace] = url.hostname.split(".");
    const target = find(objects, "Service", service!) as unknown as IService & KubeObject;
    expect(target.metadata.namespace).toBe(namespace);
    expect(target.spec!.ports!.find((p) => p.name === "http")?.port).toBe(Number(url.port));
  });
});
