import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { promisify } from "node:util";
import { create, type DescService } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AdminService } from "../../services/gen/proto/gatehouse/v1/admin_service_pb.ts";
import { createLogger } from "../../services/shared/logging/index.ts";
import { grpcServiceDefinition } from "../../services/shared/rpc/index.ts";
import { basicAuthorization } from "../../services/token/clients/basic-credentials.ts";
import { type RunningTokenService, startTokenService } from "../../services/token/token-service.ts";
import { grpcAdminClient } from "../support/admin-clients.ts";
import { type TestDatabase, useTestDatabase } from "../support/database.ts";
import { check, healthClient, list } from "../support/grpc-health-client.ts";
import { grpcTokenClient } from "../support/token-clients.ts";
import { createTestClient } from "../support/token-fixtures.ts";
import { testServiceSettings } from "../support/token-service-settings.ts";

/**
 * The admin plane (AdminService, /metrics) on its own listener, and the standard gRPC services on
 * the token API's gRPC port (grpc.health.v1, server reflection), each through a real client:
 * grpc-js over grpc-health-check's own proto, connect-node's gRPC-Web transport, `buf curl`.
 */

const log = createLogger({ level: "silent", component: "test", pretty: false });
const run = promisify(execFile);
let tdb: TestDatabase;
let service: RunningTokenService;
const root = { id: "root", secret: "" };
const web = { id: "web", secret: "" };

const masterKey = randomBytes(32);

async function start(
  overrides: Parameters<typeof testServiceSettings>[0] = {},
): Promise<RunningTokenService> {
  return startTokenService({
    settings: testServiceSettings({ masterKey, ...overrides }),
    database: { kind: "postgres", url: tdb.url },
    logger: log,
  });
}

beforeAll(async () => {
  tdb = await useTestDatabase();
  root.secret = (await createTestClient(tdb.db.prisma, { id: "root", roles: ["admin"] })).secret;
  web.secret = (await createTestClient(tdb.db.prisma, { id: "web", roles: ["issuer"] })).secret;
  service = await start();
  // A key to sign with, so the service is ready.
  const admin = grpcAdminClient(service.adminPort, root);
  await admin.rotateSigningKeys({});
  admin.close();
});
afterAll(async () => {
  await service?.shutdown();
  await tdb?.drop();
});

/** A grpc-js client of `service` at exactly `port` (no admin-port lookup). */
function rawGrpcCall(service: DescService, port: number, method: string, credentials = root) {
  const Ctor = grpc.makeGenericClientConstructor(grpcServiceDefinition(service), service.name);
  const client = new Ctor(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  const desc = service.methods.find((m) => m.localName === method)!;
  const md = new grpc.Metadata();
  md.set("authorization", basicAuthorization(credentials.id, credentials.secret));
  return new Promise<{ code: number; value?: unknown }>((resolve) => {
    (client as unknown as Record<string, (...a: unknown[]) => void>)[method]!.call(
      client,
      create(desc.input, {}),
      md,
      (err: grpc.ServiceError | null, value: unknown) => {
        client.close();
        resolve(err ? { code: err.code } : { code: grpc.status.OK, value });
      },
    );
  });
}

describe("the admin plane", () => {
  it("serves AdminService over native gRPC (grpc-js, h2c) on its own port", async () => {
    expect(service.adminPort).not.toBe(service.grpcPort);
    expect(service.adminPort).not.toBe(service.httpPort);
    const res = await rawGrpcCall(AdminService, service.adminPort, "listClients");
    expect(res.code).toBe(grpc.status.OK);
    expect((res.value as { clients: { clientId: string }[] }).clients.map((c) => c.clientId)).toContain(
      "root",
    );
  });

  it("serves AdminService over Connect/JSON and gRPC-Web on the same port", async () => {
    const res = await fetch(`http://127.0.0.1:${service.adminPort}/gatehouse.v1.AdminService/ListClients`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        authorization: basicAuthorization(root.id, root.secret),
      },
      body: "{}",
    });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { clients: { id: string }[] }).clients.length).toBeGreaterThanOrEqual(2);

    const client = createClient(
      AdminService,
      createGrpcWebTransport({ baseUrl: `http://127.0.0.1:${service.adminPort}`, httpVersion: "1.1" }),
    );
    const listed = await client.listClients(
      {},
      { headers: { authorization: basicAuthorization(root.id, root.secret) } },
    );
    expect(listed.clients.map((c) => c.clientId)).toContain("web");
  });

  it("still requires the admin role there", async () => {
    const res = await rawGrpcCall(AdminService, service.adminPort, "listClients", web);
    expect(res.code).toBe(grpc.status.PERMISSION_DENIED);
    const anonymous = await fetch(
      `http://127.0.0.1:${service.adminPort}/gatehouse.v1.AdminService/ListClients`,
      {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: "{}",
      },
    );
    expect(anonymous.status).toBe(401);
  });

  it("serves /metrics and /healthz, and nothing of the public API", async () => {
    const metrics = await fetch(`http://127.0.0.1:${service.adminPort}/metrics`);
    expect(metrics.status).toBe(200);
    expect(await metrics.text()).toMatch(
      /gatehouse_rpc_duration_seconds_count\{[^}]*service="gatehouse\.v1\.AdminService"[^}]*protocol="grpc"/,
    );
    expect((await fetch(`http://127.0.0.1:${service.adminPort}/healthz`)).status).toBe(200);
    expect((await fetch(`http://127.0.0.1:${service.adminPort}/.well-known/jwks.json`)).status).toBe(404);
    const token = await fetch(`http://127.0.0.1:${service.adminPort}/gatehouse.v1.TokenService/GetJwks`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{}",
    });
    expect(token.status).toBe(404);
  });

  it("is gone from the public listeners: UNIMPLEMENTED on gRPC, 404 over HTTP", async () => {
    expect((await rawGrpcCall(AdminService, service.grpcPort, "listClients")).code).toBe(
      grpc.status.UNIMPLEMENTED,
    );
    const connect = await fetch(
      `http://127.0.0.1:${service.httpPort}/gatehouse.v1.AdminService/ListClients`,
      {
        method: "POST",
        headers: {
          "content-type": "application/json",
          authorization: basicAuthorization(root.id, root.secret),
        },
        body: "{}",
      },
    );
    expect(connect.status).toBe(404);
    expect((await fetch(`http://127.0.0.1:${service.httpPort}/metrics`)).status).toBe(404);
    // The public API itself is where it was.
    const tokens = grpcTokenClient(service.grpcPort);
    expect((await tokens.getJwks({})).keys.length).toBeGreaterThan(0);
    tokens.close();
  });

  it("refuses to start on a taken admin address, naming the setting", async () => {
    await expect(start({ adminListen: { host: "127.0.0.1", port: service.grpcPort } })).rejects.toThrow(
      /GATEHOUSE_ADMIN_LISTEN: 127\.0\.0\.1:\d+ is already in use/,
    );
  });
});

// --- grpc.health.v1 ------------------------------------------------------------------------------

describe("grpc.health.v1.Health on the gRPC port", () => {
  it("answers Check for the server and for TokenService; NOT_FOUND for other names", async () => {
    const client = healthClient(service.grpcPort);
    expect(await check(client, "")).toBe("SERVING");
    expect(await check(client, "gatehouse.v1.TokenService")).toBe("SERVING");
    await expect(check(client, "gatehouse.v1.AdminService")).rejects.toMatchObject({
      code: grpc.status.NOT_FOUND,
    });
    client.close();
  });

  it("answers List with every name it reports, and a Watch of an unknown name with SERVICE_UNKNOWN", async () => {
    const client = healthClient(service.grpcPort);
    expect(await list(client)).toEqual({ "": "SERVING", "gatehouse.v1.TokenService": "SERVING" });
    const watch = client.watch({ service: "gatehouse.v1.AdminService" });
    const first = await new Promise<string>((resolve, reject) => {
      watch.once("data", (res: { status: string }) => resolve(res.status));
      watch.once("error", reject);
    });
    expect(first).toBe("SERVICE_UNKNOWN");
    watch.cancel();
    client.close();
  });

  it("Watch sees SERVING, then NOT_SERVING the moment a drain starts, and the stream ends", async () => {
    const other = await start({ shutdownGrace: 5000 });
    const client = healthClient(other.grpcPort);
    const seen: string[] = [];
    const watch = client.watch({ service: "" });
    const ended = new Promise<void>((resolve) => {
      watch.on("error", () => resolve());
      watch.on("end", () => resolve());
    });
    await new Promise<void>((resolve) =>
      watch.on("data", (res: { status: string }) => {
        seen.push(res.status);
        if (res.status === "SERVING") resolve();
      }),
    );
    const stopped = other.shutdown();
    await ended;
    await stopped;
    expect(seen).toEqual(["SERVING", "NOT_SERVING"]);
    client.close();
  });
});

// --- server reflection --------------------------------------------------------------------------

const buf = (args: string[]) => run("node_modules/.bin/buf", ["curl", ...args], { timeout: 30_000 });

describe("server reflection on the gRPC port", () => {
  for (const protocol of ["grpc-v1", "grpc-v1alpha"]) {
    it(`lists TokenService and Health methods to buf curl (${protocol})`, async () => {
      const { stdout } = await buf([
        "--protocol",
        "grpc",
        "--http2-prior-knowledge",
        "--reflect-protocol",
        protocol,
        "--list-methods",
        `http://127.0.0.1:${service.grpcPort}`,
      ]);
      const methods = stdout.trim().split("\n").sort();
      expect(methods).toContain("gatehouse.v1.TokenService/Refresh");
      expect(methods).toContain("gatehouse.v1.TokenService/GetJwks");
      expect(methods).toContain("grpc.health.v1.Health/Watch");
      expect(methods.some((m) => m.startsWith("gatehouse.v1.AdminService/"))).toBe(false);
    });
  }

  it("lets buf curl call a real method with nothing but reflection", async () => {
    const { stdout } = await buf([
      "--protocol",
      "grpc",
      "--http2-prior-knowledge",
      "-H",
      `authorization: ${basicAuthorization(web.id, web.secret)}`,
      "-d",
      JSON.stringify({ subject: "alice", audience: ["orders"], scopes: ["orders:read"] }),
      `http://127.0.0.1:${service.grpcPort}/gatehouse.v1.TokenService/Issue`,
    ]);
    const issued = JSON.parse(stdout) as { accessToken: string; refreshToken: string };
    expect(issued.accessToken.split(".")).toHaveLength(3);
    expect(issued.refreshToken).toMatch(/^gthr_/);
  });

  it("answers UNIMPLEMENTED when GATEHOUSE_GRPC_REFLECTION is off", async () => {
    const off = await start({ grpcReflection: false });
    try {
      const failed = await buf([
        "--protocol",
        "grpc",
        "--http2-prior-knowledge",
        "--list-methods",
        `http://127.0.0.1:${off.grpcPort}`,
      ]).then(
        () => expect.fail("buf curl should fail without reflection"),
        (err: { stderr: string }) => err.stderr,
      );
      expect(failed).toMatch(/unimplemented/i);
      // Health stays on: it is not part of reflection.
      const client = healthClient(off.grpcPort);
      expect(await check(client, "")).toBe("SERVING");
      client.close();
    } finally {
      await off.shutdown();
    }
  });
});
