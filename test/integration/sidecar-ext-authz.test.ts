import * as http2 from "node:http2";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HeaderValueOption_HeaderAppendAction } from "../../services/gen/proto/envoy/config/core/v3/base_pb.ts";
import type { AttributeContext_HttpRequestSchema } from "../../services/gen/proto/envoy/service/auth/v3/attribute_context_pb.ts";
import {
  Authorization,
  type CheckResponse,
} from "../../services/gen/proto/envoy/service/auth/v3/external_auth_pb.ts";
import { grpcServiceDefinition } from "../../services/shared/rpc/grpc-service-definition.ts";
import type { RunningSidecar } from "../../services/sidecar/sidecar.ts";
import { type TestDatabase, useTestDatabase } from "../support/database.ts";
import {
  removePolicies,
  startTestSidecar,
  startTestTokenService,
  type TestTokenService,
  writePolicy,
} from "../support/sidecar-fixtures.ts";

const POLICY = `
rules:
  - match: { prefix: /public }
    public: true
  - match: { prefix: /admin }
    scopes: { allOf: [orders:write] }
  - match: { grpc: /shop.v1.Orders/* }
    scopes: { allOf: [orders:read] }
`;

const AuthorizationClient = grpc.makeGenericClientConstructor(
  grpcServiceDefinition(Authorization),
  "Authorization",
);
type HttpInit = MessageInitShape<typeof AttributeContext_HttpRequestSchema>;

let tdb: TestDatabase;
let ts: TestTokenService;
let sidecar: RunningSidecar;
let stripping: RunningSidecar;
let reader: { token: string; sessionId: string };

beforeAll(async () => {
  tdb = await useTestDatabase();
  ts = await startTestTokenService(tdb);
  const env = {
    GATEHOUSE_TOKEN_SERVICE_URL: ts.url,
    GATEHOUSE_POLICY_FILE: writePolicy(POLICY),
    GATEHOUSE_UPSTREAM: "http://127.0.0.1:9",
  };
  sidecar = await startTestSidecar(env);
  stripping = await startTestSidecar({
    ...env,
    GATEHOUSE_STRIP_AUTHORIZATION: "true",
    GATEHOUSE_FORWARD_TOKEN: "true",
  });
  reader = await ts.issue("alice", ["orders:read"]);
});
afterAll(async () => {
  await sidecar?.shutdown(100);
  await stripping?.shutdown(100);
  await ts?.service.shutdown();
  await tdb?.drop();
  removePolicies();
});

function check(port: number, http: HttpInit): Promise<CheckResponse> {
  const client = new AuthorizationClient(
    `127.0.0.1:${port}`,
    grpc.credentials.createInsecure(),
  ) as unknown as grpc.Client & {
    check(req: unknown, cb: (err: Error | null, res: CheckResponse) => void): void;
  };
  return new Promise((resolve, reject) => {
    client.check(
      create(Authorization.method.check.input, { attributes: { request: { http } } }),
      (err: Error | null, res: CheckResponse) => {
        client.close();
        if (err) reject(err);
        else resolve(res);
      },
    );
  });
}

const headerList = (r: CheckResponse) => {
  if (r.httpResponse.case !== "okResponse" && r.httpResponse.case !== "deniedResponse") return {};
  return Object.fromEntries(r.httpResponse.value.headers.map((h) => [h.header!.key, h.header!.value]));
};

describe("Envoy ext_authz Check over gRPC", () => {
  it("allows with identity headers to set and spoofed ones to remove", async () => {
    const res = await check(sidecar.controlPort, {
      method: "GET",
      path: "/orders/7?expand=items",
      headers: {
        ":authority": "shop.example",
        authorization: `Bearer ${reader.token}`,
        "x-gatehouse-subject": "mallory",
        "x-gatehouse-role": "admin",
      },
    });
    expect(res.status?.code).toBe(0);
    expect(res.httpResponse.case).toBe("okResponse");
    if (res.httpResponse.case !== "okResponse") return;
    const ok = res.httpResponse.value;
    expect(headerList(res)).toEqual({
      "x-gatehouse-subject": "alice",
      "x-gatehouse-client-id": "web",
      "x-gatehouse-scopes": "orders:read",
      "x-gatehouse-session-id": reader.sessionId,
    });
    for (const h of ok.headers) {
      expect(h.appendAction).toBe(HeaderValueOption_HeaderAppendAction.OVERWRITE_IF_EXISTS_OR_ADD);
    }
    expect(ok.headersToRemove).toEqual(["x-gatehouse-role"]);
  });

  it("removes a spoofed identity header the token leaves empty (Envoy drops empty values)", async () => {
    const noScopes = await ts.issue("nobody", []);
    const res = await check(sidecar.controlPort, {
      method: "GET",
      path: "/orders",
      headers: { authorization: `Bearer ${noScopes.token}`, "x-gatehouse-scopes": "orders:write" },
    });
    if (res.httpResponse.case !== "okResponse") throw new Error("expected ok");
    expect(headerList(res)).not.toHaveProperty("x-gatehouse-scopes");
    expect(res.httpResponse.value.headersToRemove).toEqual(["x-gatehouse-scopes"]);
  });

  it("removes authorization and adds x-gatehouse-jwt when configured", async () => {
    const res = await check(stripping.controlPort, {
      method: "GET",
      path: "/orders",
      headers: { authorization: `Bearer ${reader.token}` },
    });
    if (res.httpResponse.case !== "okResponse") throw new Error("expected ok");
    expect(res.httpResponse.value.headersToRemove).toEqual(["authorization"]);
    expect(headerList(res)["x-gatehouse-jwt"]).toBe(reader.token);
  });

  it("denies 401 with WWW-Authenticate and a JSON body, status UNAUTHENTICATED", async () => {
    const res = await check(sidecar.controlPort, { method: "GET", path: "/orders", headers: {} });
    expect(res.status).toMatchObject({ code: 16, message: "no bearer token" });
    expect(res.httpResponse.case).toBe("deniedResponse");
    if (res.httpResponse.case !== "deniedResponse") return;
    expect(res.httpResponse.value.status?.code).toBe(401);
    expect(headerList(res)).toMatchObject({
      "www-authenticate": 'Bearer realm="gatehouse"',
      "content-type": "application/json",
    });
    expect(JSON.parse(res.httpResponse.value.body)).toEqual({
      error: "missing_token",
      message: "no bearer token",
    });
  });

  it("denies 403 insufficient_scope, status PERMISSION_DENIED", async () => {
    const res = await check(sidecar.controlPort, {
      method: "POST",
      path: "/admin/users",
      headers: { authorization: `Bearer ${reader.token}` },
    });
    expect(res.status?.code).toBe(7);
    if (res.httpResponse.case !== "deniedResponse") throw new Error("expected denied");
    expect(res.httpResponse.value.status?.code).toBe(403);
    expect(headerList(res)["www-authenticate"]).toBe(
      'Bearer realm="gatehouse", error="insufficient_scope", error_description="insufficient_scope", scope="orders:write"',
    );
    expect(JSON.parse(res.httpResponse.value.body)).toMatchObject({ error: "insufficient_scope" });
  });

  it("denies a bad token as invalid_token with its reason", async () => {
    const res = await check(sidecar.controlPort, {
      method: "GET",
      path: "/orders",
      headers: { authorization: "Bearer eyJhbGciOiJub25lIn0.e30.c2ln" },
    });
    expect(res.status?.code).toBe(16);
    expect(headerList(res)["www-authenticate"]).toMatch(/error="invalid_token", error_description="\w+"/);
  });

  it("matches gRPC requests on grpc rules, ignores the query, and refuses paths that are not normal", async () => {
    const grpcOk = await check(sidecar.controlPort, {
      method: "POST",
      path: "/shop.v1.Orders/Get",
      headers: { "content-type": "application/grpc", authorization: `Bearer ${reader.token}` },
    });
    expect(grpcOk.status?.code).toBe(0);
    const publicWithQuery = await check(sidecar.controlPort, {
      method: "GET",
      path: "/public/x?next=/admin",
      headers: {},
    });
    expect(publicWithQuery.status?.code).toBe(0);
    const sneaky = await check(sidecar.controlPort, {
      method: "GET",
      path: "/public/%2e%2e/admin",
      headers: {},
    });
    expect(sneaky.status?.code).toBe(3);
    if (sneaky.httpResponse.case !== "deniedResponse") throw new Error("expected denied");
    expect(sneaky.httpResponse.value.status?.code).toBe(400);
  });

  it.each([
    ["/public/..;/admin", "ambiguous_path"],
    ["/public/..\\admin", "ambiguous_path"],
    ["/public/..%2fadmin", "ambiguous_path"],
    ["/public/%00", "invalid_path"],
  ])("refuses the ambiguous path %s with no token: 400 %s", async (path, code) => {
    const res = await check(sidecar.controlPort, { method: "GET", path, headers: {} });
    expect(res.status?.code).toBe(3);
    if (res.httpResponse.case !== "deniedResponse") throw new Error("expected denied");
    expect(res.httpResponse.value.status?.code).toBe(400);
    expect(JSON.parse(res.httpResponse.value.body)).toMatchObject({ error: code });
  });

  it.each(["/ADMIN", "/Admin/panel", "/admin/", "/admin;jsessionid=x/panel"])(
    "judges %s by the guarded /admin rule",
    async (path) => {
      const res = await check(sidecar.controlPort, {
        method: "GET",
        path,
        headers: { authorization: `Bearer ${reader.token}` },
      });
      expect(res.status?.code).toBe(7);
    },
  );

  it("reads raw header_map when Envoy sends encode_raw_headers", async () => {
    const res = await check(sidecar.controlPort, {
      method: "GET",
      path: "/orders",
      headerMap: { headers: [{ key: "authorization", rawValue: Buffer.from(`Bearer ${reader.token}`) }] },
    });
    expect(res.status?.code).toBe(0);
  });

  it("answers plain HTTP on the same port: health, readiness, metrics", async () => {
    const base = `http://127.0.0.1:${sidecar.controlPort}`;
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    const ready = await fetch(`${base}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ ready: true, problems: [], jwks: { keys: 1, stale: false } });
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toMatch(/gatehouse_sidecar_decisions_total\{reason="ok",mode="ext_authz"/);
    expect(metrics).toMatch(
      /gatehouse_sidecar_decisions_total\{reason="insufficient_scope",mode="ext_authz"/,
    );
    expect((await fetch(`${base}/nothing`)).status).toBe(404);
  });

  it("answers /readyz over HTTP/2 too, and UNIMPLEMENTED for other gRPC methods", async () => {
    const session = http2.connect(`http://127.0.0.1:${sidecar.controlPort}`);
    const status = await new Promise<number>((resolve) => {
      const s = session.request({ ":path": "/readyz" });
      s.on("response", (h) => resolve(Number(h[":status"])));
      s.resume();
    });
    expect(status).toBe(200);
    const grpcStatus = await new Promise<string | undefined>((resolve) => {
      const s = session.request({
        ":method": "POST",
        ":path": "/envoy.service.auth.v3.Authorization/Nope",
        "content-type": "application/grpc",
      });
      s.on("response", (h) => resolve(h["grpc-status"] as string | undefined));
      s.resume();
    });
    expect(grpcStatus).toBe("12");
    session.close();
  });
});
