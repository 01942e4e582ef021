import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { Ajv2020 } from "ajv/dist/2020.js";
import { describe, expect, it } from "vitest";
import { compilePolicy } from "../../services/sidecar/policy/index.ts";
import { DEPLOY, REPO, readRepoFile, readYaml } from "./deploy-files.ts";

interface Healthcheck {
  test?: string[] | string;
  disable?: boolean;
}
interface ComposeService {
  image?: string;
  build?: { context: string; dockerfile: string };
  command?: string[];
  entrypoint?: string[];
  environment?: Record<string, string>;
  env_file?: string[];
  secrets?: string[];
  configs?: { source: string; target: string }[];
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: Healthcheck;
  network_mode?: string;
  ports?: string[];
  read_only?: boolean;
  tmpfs?: string[];
  cap_drop?: string[];
  security_opt?: string[];
  restart?: string;
}
interface Compose {
  services: Record<string, ComposeService>;
  configs: Record<string, { file: string }>;
  secrets: Record<string, { file: string }>;
}

const compose = readYaml("deploy/compose.yaml") as Compose;
const services = compose.services;
const GATEHOUSE = Object.keys(services).filter((name) => services[name]!.build !== undefined);

/** `KEY=value` lines of an env file next to compose.yaml. */
function envFile(path: string): Record<string, string> {
  const lines = readFileSync(join(DEPLOY, path), "utf8").split("\n");
  const pairs = lines.filter((l) => /^[A-Z_][A-Z0-9_]*=/.test(l)).map((l) => l.split(/=(.*)/s, 2));
  return Object.fromEntries(pairs.map(([k, v]) => [k!, v!]));
}

/** Every variable a service sees: its env files, then `environment`. */
function environmentOf(name: string): Record<string, string> {
  const s = services[name]!;
  return Object.assign({}, ...(s.env_file ?? []).map(envFile), s.environment ?? {});
}

describe("deploy/compose.yaml", () => {
  it("is valid against the Compose Specification's JSON schema", () => {
    const text = readRepoFile("test/deploy/schemas/compose-spec.json");
    const schema = JSON.parse(text) as Record<string, unknown>;
    // The vendored schema is upstream's, unedited (see schemas/README.md).
    expect(createHash("sha256").update(JSON.stringify(schema)).digest("hex")).toBe(
      "7aa341e4ee63c0058e7ff424581b56aacc7a0a6e5791060b74c70cc6ecc5046b",
    );
    const ajv = new Ajv2020({ allErrors: true, strict: false });
    const validate = ajv.compile(schema);
    const valid = validate(compose);
    expect(validate.errors ?? [], JSON.stringify(validate.errors, null, 2)).toEqual([]);
    expect(valid).toBe(true);
  });

  it("the schema check would catch a mistake", () => {
    const validate = new Ajv2020({ strict: false }).compile(
      JSON.parse(readRepoFile("test/deploy/schemas/compose-spec.json")) as Record<string, unknown>,
    );
    const broken = structuredClone(compose) as unknown as {
      services: Record<string, Record<string, unknown>>;
    };
    broken.services["token-service"]!.depends_on = { migrate: { condition: "service_finished" } };
    expect(validate(broken)).toBe(false);
  });

  it("runs Postgres 15 or 16 and Redis without persistence", () => {
    expect(services.postgres!.image).toMatch(/^postgres:1[56](\.|-|$)/);
    expect(services.redis!.image).toMatch(/^redis:/);
    expect(services.redis!.command).toEqual(["redis-server", "--save", "", "--appendonly", "no"]);
  });

  it("starts in order: postgres → migrate (completes) → token service (ready) → sidecar (ready) → app", () => {
    const dependsOn = (name: string) =>
      Object.fromEntries(Object.entries(services[name]!.depends_on ?? {}).map(([k, v]) => [k, v.condition]));
    expect(dependsOn("migrate")).toEqual({ postgres: "service_healthy" });
    expect(dependsOn("token-service")).toEqual({
      migrate: "service_completed_successfully",
      redis: "service_healthy",
    });
    expect(dependsOn("demo-sidecar")).toEqual({
      "token-service": "service_healthy",
      redis: "service_healthy",
    });
    expect(dependsOn("demo-app")).toEqual({ "demo-sidecar": "service_healthy" });
    // Waiting for health needs a health check on the service waited for.
    for (const [name, s] of Object.entries(services)) {
      for (const [dep, { condition }] of Object.entries(s.depends_on ?? {})) {
        expect(services[dep], `${name} depends on ${dep}`).toBeDefined();
        if (condition === "service_healthy") {
          expect(services[dep]!.healthcheck?.test, `${dep} has a health check`).toBeDefined();
          expect(services[dep]!.healthcheck?.disable ?? false).toBe(false);
        }
      }
    }
    expect(services.migrate!.restart).toBe("no");
    expect(services["token-service"]!.healthcheck?.test).toContain("/readyz");
    expect(services["demo-sidecar"]!.healthcheck?.test).toContain("/readyz");
  });

  it("runs the token-service image for migrate and serve, the sidecar image for the sidecar, hardened like the Kubernetes pods", () => {
    expect(GATEHOUSE.sort()).toEqual(["demo-app", "demo-sidecar", "migrate", "token-service"]);
    expect(services.migrate!.command).toEqual(["migrate"]);
    expect(services["token-service"]!.command).toEqual(["serve"]);
    expect(services["demo-sidecar"]!.command).toEqual(["sidecar"]);
    const dockerfileOf: Record<string, string> = {
      migrate: "deploy/docker/token-service.Dockerfile",
      "token-service": "deploy/docker/token-service.Dockerfile",
      "demo-sidecar": "deploy/docker/sidecar.Dockerfile",
      "demo-app": "deploy/docker/sidecar.Dockerfile",
    };
    // Image names with a default, overridable from the environment (`${NAME:-default}`).
    expect(services.migrate!.image).toMatch(/^\$\{GATEHOUSE_IMAGE:-gatehouse:dev\}$/);
    expect(services["demo-sidecar"]!.image).toMatch(/^\$\{GATEHOUSE_SIDECAR_IMAGE:-gatehouse-sidecar:dev\}$/);
    for (const name of GATEHOUSE) {
      const s = services[name]!;
      expect(s.build).toEqual({ context: "..", dockerfile: dockerfileOf[name] });
      expect(existsSync(join(REPO, s.build!.dockerfile)), s.build!.dockerfile).toBe(true);
      expect(s.read_only, name).toBe(true);
      expect(
        s.tmpfs?.some((t) => t.split(":")[0] === "/tmp"),
        name,
      ).toBe(true);
      expect(s.cap_drop, name).toEqual(["ALL"]);
      expect(s.security_opt, name).toContain("no-new-privileges:true");
    }
  });

  it("reads secrets from files, never from inline values, and gives each service only its own", () => {
    const inline = Object.values(services).flatMap((s) => Object.keys(s.environment ?? {}));
    for (const name of ["DATABASE_URL", "GATEHOUSE_MASTER_KEY", "POSTGRES_PASSWORD"])
      expect(inline).not.toContain(name);
    for (const s of Object.values(services)) {
      for (const value of Object.values(s.environment ?? {}))
        expect(value).not.toMatch(/:\/\/[^/\s@]*:[^/\s@]*@/);
    }
    expect(Object.keys(environmentOf("migrate"))).toEqual(["DATABASE_URL"]);
    expect(environmentOf("token-service").GATEHOUSE_MASTER_KEY).toBeDefined();
    expect(environmentOf("demo-sidecar").DATABASE_URL).toBeUndefined();
    expect(environmentOf("demo-sidecar").GATEHOUSE_MASTER_KEY).toBeUndefined();
    expect(services.postgres!.secrets).toEqual(["postgres_password"]);
  });

  it("ships obvious development placeholders that work together", () => {
    const key = environmentOf("token-service").GATEHOUSE_MASTER_KEY!;
    const bytes = Buffer.from(key, "base64");
    expect(bytes).toHaveLength(32);
    expect(bytes.toString("utf8")).toMatch(/^DEV-ONLY/);
    expect(readFileSync(join(DEPLOY, "compose/master-key.env"), "utf8")).toContain("openssl rand -base64 32");
    const password = readFileSync(join(DEPLOY, compose.secrets.postgres_password!.file), "utf8").trim();
    expect(password).toMatch(/dev-only/);
    const url = new URL(environmentOf("token-service").DATABASE_URL!);
    expect([url.hostname, url.username, url.password, url.pathname]).toEqual([
      "postgres",
      "gatehouse",
      password,
      "/gatehouse",
    ]);
  });

  it("wires the sidecar to the token service, the issuer, its policy and the app on loopback", () => {
    const sidecar = environmentOf("demo-sidecar");
    expect(sidecar.GATEHOUSE_ISSUER).toBe(environmentOf("token-service").GATEHOUSE_ISSUER);
    expect(sidecar.GATEHOUSE_TOKEN_SERVICE_URL).toBe("http://token-service:7480");
    expect(sidecar.GATEHOUSE_UPSTREAM).toBe("http://127.0.0.1:8080");
    const [config] = services["demo-sidecar"]!.configs!;
    expect(config!.target).toBe(sidecar.GATEHOUSE_POLICY_FILE);
    const policyFile = compose.configs[config!.source]!.file;
    expect(() => compilePolicy(readFileSync(join(DEPLOY, policyFile), "utf8"), policyFile)).not.toThrow();
    // The app shares the sidecar's network namespace, like a pod, and listens on loopback only.
    const app = services["demo-app"]!;
    expect(app.network_mode).toBe("service:demo-sidecar");
    expect(app.ports).toBeUndefined();
    expect(app.command?.join("\n")).toContain('listen(8080, "127.0.0.1")');
    // Published ports stay on this machine.
    for (const s of Object.values(services))
      for (const p of s.ports ?? []) expect(p).toMatch(/^127\.0\.0\.1:/);
  });
});
