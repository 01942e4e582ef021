import { spawn, spawnSync } from "node:child_process";
import { afterEach, describe, expect, it } from "vitest";
import { SettingsError } from "../../services/shared/settings/index.ts";
import { createMemoryRevocationState } from "../../services/sidecar/revocation-state/index.ts";
import { type RunningSidecar, startSidecar } from "../../services/sidecar/sidecar.ts";
import { ISSUER, silentLogger, testSidecarSettings } from "../support/sidecar-fixtures.ts";

/**
 * Issue 14 item 7: a sidecar that follows no revocation stream accepts revoked tokens until they
 * expire, so it starts only when told that is intended (GATEHOUSE_REVOCATION=none), and then says
 * so in /readyz, a metric and its log. No token service needed: nothing here verifies a token.
 */

const NOWHERE = {
  GATEHOUSE_TOKEN_SERVICE_URL: "http://127.0.0.1:9",
  GATEHOUSE_UPSTREAM: "http://127.0.0.1:9",
};
const running: RunningSidecar[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((s) => s.shutdown(50)));
});

async function start(env: Record<string, string>, withStream: boolean): Promise<RunningSidecar> {
  const revocation = createMemoryRevocationState({ stalenessBoundMs: 60_000 });
  revocation.markFresh(Date.now());
  const sidecar = await startSidecar({
    settings: testSidecarSettings({ ...NOWHERE, ...env }),
    logger: silentLogger(),
    ...(withStream ? { revocation } : {}),
  });
  running.push(sidecar);
  return sidecar;
}

const rejection = (promise: Promise<unknown>) =>
  promise.then(
    () => undefined,
    (err: unknown) => err,
  );

describe("revocation source", () => {
  it("refuses to start without a revocation stream unless GATEHOUSE_REVOCATION=none", async () => {
    const err = await rejection(start({}, false));
    expect(err).toBeInstanceOf(SettingsError);
    expect((err as SettingsError).variable).toBe("GATEHOUSE_REVOCATION");
    expect((err as SettingsError).message).toMatch(
      /set REDIS_URL \(or REDIS_SENTINELS\), or GATEHOUSE_REVOCATION=none/,
    );
  });

  it("refuses GATEHOUSE_REVOCATION=none beside a revocation stream, rather than guess which was meant", async () => {
    const err = await rejection(start({ GATEHOUSE_REVOCATION: "none" }, true));
    expect(err).toBeInstanceOf(SettingsError);
    expect((err as SettingsError).variable).toBe("GATEHOUSE_REVOCATION");
  });

  it("with none, says so in /readyz and in gatehouse_sidecar_revocation_source", async () => {
    const sidecar = await start({ GATEHOUSE_REVOCATION: "none" }, false);
    expect(sidecar.readiness().revocation).toEqual({ source: "none", stale: false, failMode: "closed" });
    const ready = await fetch(`http://127.0.0.1:${sidecar.controlPort}/readyz`);
    expect(await ready.json()).toMatchObject({ revocation: { source: "none" } });
    const metrics = await (await fetch(`http://127.0.0.1:${sidecar.controlPort}/metrics`)).text();
    expect(metrics).toMatch(/gatehouse_sidecar_revocation_source\{source="none"[^}]*\} 1/);
  });

  it("with a stream, reports source stream", async () => {
    const sidecar = await start({}, true);
    expect(sidecar.readiness().revocation.source).toBe("stream");
    const metrics = await (await fetch(`http://127.0.0.1:${sidecar.controlPort}/metrics`)).text();
    expect(metrics).toMatch(/gatehouse_sidecar_revocation_source\{source="stream"[^}]*\} 1/);
  });
});

describe("gatehouse sidecar without REDIS_URL", () => {
  const env = {
    PATH: process.env.PATH,
    GATEHOUSE_ISSUER: ISSUER,
    GATEHOUSE_AUDIENCES: "orders",
    ...NOWHERE,
    GATEHOUSE_PROXY_LISTEN: "127.0.0.1:0",
    GATEHOUSE_CONTROL_LISTEN: "127.0.0.1:0",
    GATEHOUSE_LOG_PRETTY: "false",
  };

  it("exits 2 with one line saying how to fix it", () => {
    const r = spawnSync(process.execPath, ["bin/gatehouse.mjs", "sidecar"], {
      env,
      encoding: "utf8",
      timeout: 20_000,
    });
    expect(r.status).toBe(2);
    expect(r.stderr.trim().split("\n")).toEqual([
      expect.stringMatching(
        /^gatehouse sidecar: configuration error: GATEHOUSE_REVOCATION: .*set REDIS_URL \(or REDIS_SENTINELS\), or GATEHOUSE_REVOCATION=none/,
      ),
    ]);
  }, 30_000);

  it("starts with GATEHOUSE_REVOCATION=none and warns that revoked tokens pass", async () => {
    const child = spawn(process.execPath, ["bin/gatehouse.mjs", "sidecar"], {
      env: { ...env, GATEHOUSE_REVOCATION: "none" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stdout.on("data", (d) => {
      out += d;
    });
    try {
      await expect.poll(() => out.includes('"msg":"sidecar listening"'), { timeout: 20_000 }).toBeTruthy();
      const warning = out.split("\n").find((l) => l.includes("GATEHOUSE_REVOCATION=none"));
      expect(JSON.parse(warning!)).toMatchObject({ level: "warn" });
    } finally {
      child.kill("SIGKILL");
    }
  }, 30_000);
});
