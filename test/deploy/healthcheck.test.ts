import { execFile } from "node:child_process";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEPLOY } from "./deploy-files.ts";

const run = promisify(execFile);
const SCRIPT = join(DEPLOY, "docker/healthcheck.mjs");

/** A listener answering `status` on every path, recording the paths asked for. */
async function listener(status: number): Promise<{ server: Server; port: number; paths: string[] }> {
  const paths: string[] = [];
  const server = createServer((req, res) => {
    paths.push(req.url ?? "");
    res.writeHead(status).end();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { server, port: (server.address() as AddressInfo).port, paths };
}

/** A port nothing listens on. */
async function closedPort(): Promise<number> {
  const { server, port } = await listener(200);
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Exit code of the health check run the way the image's HEALTHCHECK runs it. */
async function check(env: Record<string, string>, ...args: string[]): Promise<number> {
  try {
    await run(process.execPath, [SCRIPT, ...args], {
      env: { PATH: process.env.PATH ?? "", ...env },
      timeout: 10_000,
    });
    return 0;
  } catch (err) {
    return (err as { code: number }).code;
  }
}

describe("deploy/docker/healthcheck.mjs", () => {
  let ok: Awaited<ReturnType<typeof listener>>;
  let failing: Awaited<ReturnType<typeof listener>>;
  let closed: number;

  beforeAll(async () => {
    ok = await listener(200);
    failing = await listener(503);
    closed = await closedPort();
  });
  afterAll(async () => {
    await Promise.all([ok, failing].map(({ server }) => new Promise((resolve) => server.close(resolve))));
  });

  it("is healthy when the token service's HTTP listener answers /healthz", async () => {
    const before = ok.paths.length;
    expect(
      await check({ GATEHOUSE_HTTP_LISTEN: `:${ok.port}`, GATEHOUSE_CONTROL_LISTEN: `:${closed}` }),
    ).toBe(0);
    expect(ok.paths.slice(before)).toEqual(["/healthz"]);
  });

  it("is healthy when only the sidecar's control listener answers", async () => {
    expect(
      await check({ GATEHOUSE_HTTP_LISTEN: `${closed}`, GATEHOUSE_CONTROL_LISTEN: `0.0.0.0:${ok.port}` }),
    ).toBe(0);
  });

  it("asks for the path it is given, and trusts the first listener that answers", async () => {
    const before = failing.paths.length;
    const env = { GATEHOUSE_HTTP_LISTEN: `:${failing.port}`, GATEHOUSE_CONTROL_LISTEN: `:${ok.port}` };
    expect(await check(env, "/readyz")).toBe(1);
    expect(failing.paths.slice(before)).toEqual(["/readyz"]);
  });

  it("is unhealthy when nothing answers", async () => {
    expect(await check({ GATEHOUSE_HTTP_LISTEN: `:${closed}`, GATEHOUSE_CONTROL_LISTEN: `:${closed}` })).toBe(
      1,
    );
  });

  it("checks GATEHOUSE_HEALTHCHECK_URL alone when it is set", async () => {
    const env = {
      GATEHOUSE_HEALTHCHECK_URL: `http://127.0.0.1:${ok.port}/anything`,
      GATEHOUSE_HTTP_LISTEN: `:${closed}`,
    };
    expect(await check(env)).toBe(0);
    expect(ok.paths.at(-1)).toBe("/anything");
  });
});
