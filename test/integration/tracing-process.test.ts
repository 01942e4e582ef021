import { type ChildProcess, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type OtlpReceiver, startOtlpReceiver } from "../../bench/lib/otlp-receiver.ts";
import { type TestDatabase, useTestDatabase } from "../support/database.ts";
import { type GatehouseProcess, startGatehouse } from "../support/gatehouse-process.ts";
import { ISSUER } from "../support/sidecar-fixtures.ts";

/**
 * Tracing's cost when off is no SDK at all: `gatehouse sidecar` (from its esbuild bundle, as a pod
 * runs it) and `gatehouse serve` are started as processes with a module-load recorder
 * (support/module-loads) and must never load an OpenTelemetry SDK module unless an OTLP endpoint is set.
 * With one set, the same sidecar loads the SDK chunk and exports its spans.
 */
const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const RECORDER = join(ROOT, "test/support/module-loads/register.mjs");
mkdirSync(join(ROOT, "dist"), { recursive: true });
const work = mkdtempSync(join(ROOT, "dist", ".tracing-test-"));
const bundleDir = join(work, "bundle");
/**
 * The SDK's packages and our chunk that imports them. Not `@opentelemetry/api`: prom-client depends
 * on it (CPU-time exemplars), so it was in every process before tracing existed.
 */
const OTEL = /@opentelemetry\/(?!api\/)|otel-tracing/;

let tdb: TestDatabase;
let receiver: OtlpReceiver;
const children: ChildProcess[] = [];

beforeAll(async () => {
  const built = spawnSync(process.execPath, ["scripts/sidecar-bundle.mjs", "--out", bundleDir], {
    cwd: ROOT,
    encoding: "utf8",
  });
  expect(built.stderr).toBe("");
  expect(built.stdout).toContain("sidecar bundle: built");
  tdb = await useTestDatabase();
  receiver = await startOtlpReceiver();
}, 60_000);

afterAll(async () => {
  for (const child of children) if (child.exitCode === null) child.kill("SIGKILL");
  await receiver?.close();
  await tdb?.drop();
  rmSync(work, { recursive: true, force: true });
});

interface Started extends GatehouseProcess {
  /** Every module URL the process loaded so far. */
  modules(): string[];
}

async function start(command: string, env: Record<string, string>, readyMessage: string): Promise<Started> {
  const log = join(work, `modules-${randomBytes(4).toString("hex")}.txt`);
  const started = await startGatehouse(command, {
    nodeArgs: ["--import", RECORDER],
    env: {
      GATEHOUSE_TEST_MODULE_LOG: log,
      GATEHOUSE_BUNDLE_DIR: bundleDir,
      GATEHOUSE_ISSUER: ISSUER,
      ...env,
    },
    readyMessage,
  });
  children.push(started.child);
  return {
    ...started,
    modules: () => (existsSync(log) ? readFileSync(log, "utf8").split("\n").filter(Boolean) : []),
  };
}

const sidecarEnv = {
  GATEHOUSE_RUNTIME: "bundle",
  GATEHOUSE_AUDIENCES: "orders",
  // Nothing listens there: the sidecar starts (not ready) all the same, which is all this needs.
  GATEHOUSE_TOKEN_SERVICE_URL: "http://127.0.0.1:9",
  GATEHOUSE_UPSTREAM: "http://127.0.0.1:9",
  GATEHOUSE_PROXY_LISTEN: "127.0.0.1:0",
  GATEHOUSE_CONTROL_LISTEN: "127.0.0.1:0",
  GATEHOUSE_REVOCATION: "none",
};

describe("with no OTLP endpoint", () => {
  it("the bundled sidecar loads no OpenTelemetry SDK module", async () => {
    const sidecar = await start("sidecar", sidecarEnv, "sidecar listening");
    expect(sidecar.lines.find((l) => l.msg === "sidecar starting")?.runtime).toBe("bundle");
    const modules = sidecar.modules();
    expect(modules.some((url) => url.includes(bundleDir))).toBe(true);
    expect(modules.filter((url) => OTEL.test(url))).toEqual([]);
    expect(await sidecar.stop()).toBe(0);
  }, 60_000);

  it("the token service loads no OpenTelemetry SDK module", async () => {
    const serve = await start(
      "serve",
      {
        DATABASE_URL: tdb.url,
        GATEHOUSE_MASTER_KEY: randomBytes(32).toString("base64"),
        GATEHOUSE_LISTEN: "127.0.0.1:0",
        GATEHOUSE_HTTP_LISTEN: "127.0.0.1:0",
        GATEHOUSE_ADMIN_LISTEN: "127.0.0.1:0",
        GATEHOUSE_REVOCATION: "none",
        GATEHOUSE_KEY_ROTATION: "off",
        OTEL_SDK_DISABLED: "true",
        // Disabled wins over an endpoint: still nothing loaded.
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
      },
      "rpc servers listening",
    );
    const modules = serve.modules();
    expect(modules.some((url) => url.endsWith("token-service.ts"))).toBe(true);
    expect(modules.filter((url) => OTEL.test(url))).toEqual([]);
    expect(await serve.stop()).toBe(0);
  }, 60_000);
});

describe("with OTEL_EXPORTER_OTLP_ENDPOINT", () => {
  it("the bundled sidecar loads the SDK chunk and exports its spans, flushed at shutdown", async () => {
    const sidecar = await start(
      "sidecar",
      { ...sidecarEnv, OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint, OTEL_SERVICE_NAME: "pod-sidecar" },
      "sidecar listening",
    );
    expect(sidecar.lines.some((l) => l.msg === "tracing on")).toBe(true);
    const chunks = sidecar.modules().filter((url) => url.includes(bundleDir) && OTEL.test(url));
    expect(chunks.length).toBeGreaterThan(0);
    const listening = sidecar.lines.find((l) => l.msg === "sidecar listening")!;
    const traceId = randomBytes(16).toString("hex");
    const res = await fetch(`http://127.0.0.1:${listening.controlPort}/authz`, {
      headers: { traceparent: `00-${traceId}-${"1".repeat(16)}-01`, "x-forwarded-uri": "/x" },
    });
    // No keys (no token service): the check is refused, and the span says why.
    expect(res.status).toBeGreaterThanOrEqual(400);
    expect(await sidecar.stop()).toBe(0);
    const span = receiver.spans().find((s) => s.traceId === traceId && s.name === "forward_auth GET");
    expect(span).toMatchObject({ service: "pod-sidecar", parentSpanId: "1".repeat(16), statusCode: 2 });
  }, 60_000);
});
