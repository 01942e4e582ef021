import { join } from "node:path";
import type { IDeployment } from "kubernetes-models/apps/v1/Deployment";
import type { IHorizontalPodAutoscaler } from "kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler";
import type { IJob } from "kubernetes-models/batch/v1/Job";
import type { INetworkPolicy } from "kubernetes-models/networking.k8s.io/v1/NetworkPolicy";
import type { IPodDisruptionBudget } from "kubernetes-models/policy/v1/PodDisruptionBudget";
import type { IConfigMap } from "kubernetes-models/v1/ConfigMap";
import type { IContainer } from "kubernetes-models/v1/Container";
import type { IProbe } from "kubernetes-models/v1/Probe";
import type { ISecret } from "kubernetes-models/v1/Secret";
import type { IService } from "kubernetes-models/v1/Service";
import { describe, expect, it } from "vitest";
import { find, idOf, K8S, kustomizationDirs, readYamlDocuments, render } from "./deploy-files.ts";
import { schemaProblems } from "./kube-schemas.ts";
import { configMapRefs, containerEnv, containersOf, type Pod, pods, portNumber, role } from "./pod-specs.ts";
import { type KubeObject, loadKustomization } from "./render-kustomize.ts";

const DIRS = kustomizationDirs();
const OVERLAYS = ["overlays/dev", "overlays/production"];
/** What an operator applies: every overlay kustomization (the others are parts of them). */
const DEPLOYABLE = DIRS.filter(
  (d) => d.startsWith("overlays/") || d === "namespace" || d.endsWith("/namespace"),
);
const TOKEN = "gatehouse-token-service";
const SECRET_ENV = ["DATABASE_URL", "GATEHOUSE_MASTER_KEY", "REDIS_URL"];

/** Runs for the pod's lifetime: regular containers, and init containers that are native sidecars. */
function longRunning(pod: Pod): IContainer[] {
  if (pod.owner.kind === "Job") return [];
  return [
    ...(pod.spec.initContainers ?? []).filter((c) => c.restartPolicy === "Always"),
    ...pod.spec.containers,
  ];
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

/** Images of `name` (gatehouse: token service, Jobs, CLI; gatehouse-sidecar) the objects run. */
function gatehouseImages(objects: KubeObject[], name = "gatehouse"): string[] {
  const pattern = new RegExp(`(^|/)${name}([:@]|$)`);
  return pods(objects).flatMap((pod) =>
    containersOf(pod.spec)
      .map((c) => c.image ?? "")
      .filter((image) => pattern.test(image)),
  );
}

describe("every kustomization renders and every object matches its Kubernetes schema", () => {
  it("finds the kustomizations (token service, jobs, namespaces, example apps, overlays)", () => {
    expect(DIRS).toEqual([
      "base",
      "clients",
      "example-app",
      "example-app/app",
      "example-app/istio",
      "example-app/istio/app",
      "example-app/namespace",
      "migrate",
      "namespace",
      "overlays/dev",
      "overlays/dev/clients",
      "overlays/dev/example-app",
      "overlays/dev/example-app-istio",
      "overlays/dev/migrate",
      "overlays/production",
      "overlays/production/clients",
      "overlays/production/example-app",
      "overlays/production/migrate",
    ]);
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

// The example app's own manifests (example-app/app, example-app/istio/app) are checked as rendered
// by the kustomizations that inject them.
const WITH_PODS = DIRS.filter((d) => !d.endsWith("/app") && pods(render(d)).length > 0);

describe.each(WITH_PODS)("pod security and resources: %s", (dir) => {
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

  it.each(all.map((p) => [p.id, p] as const))("%s has readiness, liveness and startup probes", (_id, pod) => {
    for (const c of longRunning(pod)) {
      const where = `${pod.id} container ${c.name}`;
      for (const probe of [c.readinessProbe, c.livenessProbe]) {
        expect(probe?.httpGet ?? probe?.grpc, where).toBeDefined();
      }
      for (const probe of [c.readinessProbe, c.livenessProbe, c.startupProbe]) {
        if (probe?.httpGet) expect(portNumber(pod.spec, probe.httpGet.port), where).toBeDefined();
      }
      if (role(c) === "serve" || role(c) === "sidecar") {
        // Readiness by grpc.health.v1 (token service: the gRPC port; sidecar: the control port);
        // liveness and startup by HTTP /healthz, which does not follow readiness, so a database or
        // Redis outage makes pods unready, never restarts them.
        const [grpcPort, httpPort] = role(c) === "serve" ? [7400, 7480] : [7402, 7402];
        expect(c.readinessProbe?.grpc, where).toEqual({ port: grpcPort });
        expect(
          c.ports?.map((p) => p.containerPort),
          where,
        ).toContain(grpcPort);
        for (const probe of [c.livenessProbe, c.startupProbe]) {
          expect(probePath(probe), where).toBe("/healthz");
          expect(portNumber(pod.spec, probe?.httpGet?.port), where).toBe(httpPort);
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

describe("settings come from generated ConfigMaps, read whole", () => {
  it.each(DIRS.filter((d) => pods(render(d)).length > 0))("%s reads no ConfigMap key by name", (dir) => {
    for (const pod of pods(render(dir))) {
      for (const c of containersOf(pod.spec)) {
        expect(c.env?.filter((e) => e.valueFrom?.configMapKeyRef) ?? [], `${pod.id} ${c.name}`).toEqual([]);
      }
    }
  });

  it.each(DEPLOYABLE.filter((d) => pods(render(d)).length > 0))(
    "%s: every ConfigMap a pod reads is rendered beside it, settings ones hash-suffixed",
    (dir) => {
      const objects = render(dir);
      for (const pod of pods(objects)) {
        for (const name of configMapRefs(pod.spec)) {
          const cm = objects.find(
            (o) =>
              o.kind === "ConfigMap" &&
              o.metadata.name === name &&
              o.metadata.namespace === pod.owner.metadata.namespace,
          );
          expect(cm, `${pod.id} reads ConfigMap ${name}`).toBeDefined();
          // Only the route policies keep a fixed name: the sidecar reloads them in place.
          if (name !== "gatehouse-policy" && name !== "gatehouse-clients") {
            expect(name, `${pod.id}: a change must roll the pods`).toMatch(/-[a-z0-9]{10}$/);
          }
        }
      }
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

/** The Prometheus pods of the monitoring namespace, the only scraper the NetworkPolicies admit. */
const PROMETHEUS_PEER = {
  namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "monitoring" } },
  podSelector: { matchLabels: { "app.kubernetes.io/name": "prometheus" } },
};

/** GATEHOUSE_ISSUER as the token service of an overlay starts with it. */
function issuerOf(dir: string): string {
  const objects = render(dir);
  const pod = pods(objects).find((p) => p.owner.metadata.name === TOKEN)!;
  return containerEnv(objects, pod, pod.spec.containers[0]!).GATEHOUSE_ISSUER!;
}

describe("token service", () => {
  const deployment = (dir: string) => find(render(dir), "Deployment", TOKEN) as unknown as IDeployment;
  const container = (dir: string) => deployment(dir).spec!.template.spec!.containers[0]!;
  const hpa = (dir: string) =>
    find(render(dir), "HorizontalPodAutoscaler", TOKEN) as unknown as IHorizontalPodAutoscaler | undefined;

  it("runs `gatehouse serve` with gRPC on 7400, HTTP on 7480 and the admin plane on 7490", () => {
    const c = container("base");
    expect(c.args).toEqual(["serve"]);
    expect(c.ports?.map((p) => [p.name, p.containerPort])).toEqual([
      ["grpc", 7400],
      ["http", 7480],
      ["admin", 7490],
    ]);
    const service = find(render("base"), "Service", TOKEN) as unknown as IService;
    expect(service.spec?.ports?.map((p) => [p.name, p.port, p.targetPort, p.appProtocol])).toEqual([
      ["grpc", 7400, "grpc", "grpc"],
      ["http", 7480, "http", "http"],
    ]);
    // The admin plane has a Service of its own, so routing by the public Service never reaches it.
    const admin = find(render("base"), "Service", `${TOKEN}-admin`) as unknown as IService;
    expect(admin.spec?.ports?.map((p) => [p.name, p.port, p.targetPort])).toEqual([["admin", 7490, "admin"]]);
    for (const s of [service, admin]) {
      expect(deployment("base").spec!.template.metadata?.labels).toMatchObject(s.spec!.selector!);
    }
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

  it("reads DATABASE_URL, GATEHOUSE_MASTER_KEY and REDIS_URL from its Secret, every other setting whole", () => {
    const env = Object.fromEntries((container("base").env ?? []).map((e) => [e.name, e.valueFrom]));
    expect(Object.keys(env).sort()).toEqual(["DATABASE_URL", "GATEHOUSE_MASTER_KEY", "REDIS_URL"]);
    expect(env.DATABASE_URL?.secretKeyRef).toEqual({ name: TOKEN, key: "database-url" });
    expect(env.GATEHOUSE_MASTER_KEY?.secretKeyRef).toEqual({ name: TOKEN, key: "master-key" });
    expect(env.REDIS_URL?.secretKeyRef).toEqual({ name: TOKEN, key: "redis-url" });
    for (const dir of OVERLAYS) {
      const objects = render(dir);
      const names = container(dir).envFrom!.map((e) => e.configMapRef!.name!);
      expect(
        names.map((n) => n.replace(/-[a-z0-9]{10}$/, "")),
        dir,
      ).toEqual(["gatehouse-issuer", TOKEN]);
      const pod = pods(objects).find((p) => p.owner.metadata.name === TOKEN)!;
      const settings = containerEnv(objects, pod, container(dir));
      expect(settings.GATEHOUSE_JWKS_MAX_AGE, dir).toBe("5m");
      expect(settings.GATEHOUSE_LOG_LEVEL, dir).toBe(dir === "overlays/dev" ? "debug" : "info");
    }
    expect(issuerOf("overlays/production")).toMatch(/^https:\/\//);
  });

  it("answers on its public ports from anywhere, on the admin port only from operations and Prometheus", () => {
    const policy = find(render("base"), "NetworkPolicy", TOKEN) as unknown as INetworkPolicy;
    expect(policy.spec!.policyTypes).toEqual(["Ingress"]);
    const rules = policy.spec!.ingress!;
    expect(rules.flatMap((r) => r.ports!.map((p) => p.port)).sort()).toEqual([7400, 7480, 7490]);
    for (const rule of rules) {
      const ports = rule.ports!.map((p) => p.port);
      if (ports.includes(7490)) {
        expect(ports, "the admin port shares its rule with no public one").toEqual([7490]);
        expect(rule.from).toEqual([
          { namespaceSelector: { matchLabels: { "gatehouse.dev/operations": "true" } } },
          PROMETHEUS_PEER,
        ]);
      } else {
        expect(rule.from).toEqual([{ namespaceSelector: {} }]);
      }
    }
  });
});

describe("issuer: one per environment, the same for the token service and every sidecar", () => {
  it.each(OVERLAYS)("%s", (dir) => {
    const issuer = issuerOf(dir);
    expect(issuer).toMatch(/^https?:\/\//);
    for (const app of [
      `${dir}/example-app`,
      ...(dir === "overlays/dev" ? [`${dir}/example-app-istio`] : []),
    ]) {
      const objects = render(app);
      const pod = pods(objects).find((p) => p.owner.metadata.name === "demo-app")!;
      const sidecar = pod.spec.initContainers!.find((c) => role(c) === "sidecar")!;
      expect(containerEnv(objects, pod, sidecar).GATEHOUSE_ISSUER, app).toBe(issuer);
      // The app's projected service-account token, its client assertion, names the same issuer.
      const token = pod.spec.volumes!.find((v) => v.name === "gatehouse-token")!;
      expect(token.projected!.sources![0]!.serviceAccountToken!.audience, app).toBe(issuer);
    }
  });

  it("is written once per environment, in its issuer component", () => {
    for (const dir of OVERLAYS) {
      const k = loadKustomization(join(K8S, dir, "issuer")) as {
        kind?: string;
        configMapGenerator?: unknown[];
      };
      expect(k.kind).toBe("Component");
      expect(k.configMapGenerator).toHaveLength(1);
      for (const user of [dir, `${dir}/example-app`]) {
        const { components = [] } = loadKustomization(join(K8S, user)) as { components?: string[] };
        expect(
          components.filter((c) => c.endsWith("/issuer") || c === "issuer"),
          user,
        ).toHaveLength(1);
      }
    }
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
    const images = ["overlays/production", "overlays/production/example-app"].flatMap((dir) => [
      ...gatehouseImages(render(dir)),
      ...gatehouseImages(render(dir), "gatehouse-sidecar"),
    ]);
    expect(images.some((i) => i.includes("/gatehouse-sidecar:"))).toBe(true);
    for (const image of images) {
      expect(image).toMatch(/^[a-z0-9.-]+\.[a-z]+(:\d+)?\//);
      expect(image).toMatch(/(:\d+\.\d+\.\d+([-+][\w.]+)?|@sha256:[0-9a-f]{64})$/);
      expect(image).not.toMatch(/:latest$/);
    }
  });

  it.each(OVERLAYS)("run the sidecar from its own image, pinned with the token service's in %s", (dir) => {
    const app = render(`${dir}/example-app`);
    const sidecars = gatehouseImages(app, "gatehouse-sidecar");
    expect(sidecars).toHaveLength(1);
    expect(sidecars[0]!.replace("gatehouse-sidecar", "gatehouse")).toBe(gatehouseImages(render(dir))[0]);
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

  it("are each in one kustomization of their own, so `kubectl delete -k` of anything else keeps them", () => {
    const holders = DIRS.filter((dir) => render(dir).some((o) => o.kind === "Namespace"));
    expect(holders).toEqual(["example-app/namespace", "namespace"]);
    expect(render("namespace").map(idOf)).toEqual(["Namespace/-/gatehouse"]);
    expect(render("example-app/namespace").map(idOf)).toEqual(["Namespace/-/demo"]);
  });
});
