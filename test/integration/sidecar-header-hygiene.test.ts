import * as http from "node:http";
import * as http2 from "node:http2";
import { create } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  Authorization,
  type CheckResponse,
} from "../../services/gen/proto/envoy/service/auth/v3/external_auth_pb.ts";
import { grpcServiceDefinition } from "../../services/shared/rpc/grpc-service-definition.ts";
import type { RunningSidecar } from "../../services/sidecar/sidecar.ts";
import { type TestDatabase, useTestDatabase } from "../support/database.ts";
import { type RecordingUpstream, startRecordingUpstream } from "../support/fake-upstreams.ts";
import {
  startTestSidecar,
  startTestTokenService,
  type TestTokenService,
} from "../support/sidecar-fixtures.ts";

/**
 * Issue 14 item 5: identity headers in every spelling CGI/WSGI/Rack read as ours, and the caller's
 * own X-Forwarded-* / Forwarded, never reach the app unless the sidecar wrote them — on every front
 * end (HTTP/1.1, h2c, both WebSocket paths, request trailers) and in ext_authz's headers_to_remove.
 */

/** Underscore and mixed-case spellings of identity headers (lower case where HTTP/2 demands it). */
const SPOOFED = {
  x_gatehouse_subject: "mallory",
  "x-gatehouse_scopes": "orders:write admin",
  "x-gatehouse_jwt": "forged",
  x_gatehouse_tenant: "other-tenant",
  x_gatehouse_actor: "root-svc",
};
const SPOOFED_MIXED_CASE = {
  "X-Gatehouse_Subject": "mallory",
  X_GATEHOUSE_CLIENT_ID: "admin-cli",
  "X-Gatehouse_Actor": "root-svc",
};
const FORWARDING = {
  "x-forwarded-for": "6.6.6.6",
  "x-forwarded-host": "evil.example",
  "x-forwarded-proto": "https",
  forwarded: "for=6.6.6.6;proto=https",
};

let tdb: TestDatabase;
let ts: TestTokenService;
let app: RecordingUpstream;
let sidecar: RunningSidecar;
let behindProxy: RunningSidecar;
let reader: { token: string; sessionId: string };

beforeAll(async () => {
  tdb = await useTestDatabase();
  ts = await startTestTokenService(tdb);
  app = await startRecordingUpstream();
  const env = {
    GATEHOUSE_TOKEN_SERVICE_URL: ts.url,
    GATEHOUSE_UPSTREAM: app.url,
  };
  sidecar = await startTestSidecar(env);
  behindProxy = await startTestSidecar({ ...env, GATEHOUSE_TRUSTED_PROXIES: "10.0.0.0/8, 127.0.0.0/8, ::1" });
  reader = await ts.issue("alice", ["orders:read"]);
});
afterAll(async () => {
  await sidecar?.shutdown(100);
  await behindProxy?.shutdown(100);
  await app?.close();
  await ts?.service.shutdown();
  await tdb?.drop();
});

const bearer = () => ({ authorization: `Bearer ${reader.token}` });

/** The identity headers the app got: every name that reads as `x-gatehouse-*` once `_` is `-`. */
function identityOf(headers: NodeJS.Dict<string | string[]>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (name.toLowerCase().replaceAll("_", "-").startsWith("x-gatehouse-")) out[name] = value;
  }
  return out;
}

const alice = () => ({
  "x-gatehouse-subject": "alice",
  "x-gatehouse-client-id": "web",
  "x-gatehouse-scopes": "orders:read",
  "x-gatehouse-session-id": reader.sessionId,
});

function http1(port: number, headers: http.OutgoingHttpHeaders, trailers?: http.OutgoingHttpHeaders) {
  return new Promise<number>((resolve, reject) => {
    const req = http.request(
      { host: "127.0.0.1", port, path: "/orders", method: trailers ? "POST" : "GET", headers, agent: false },
      (res) => {
        res.resume();
        res.on("end", () => resolve(res.statusCode!));
      },
    );
    req.on("error", reject);
    if (trailers !== undefined) {
      req.write("part-1");
      req.addTrailers(trailers);
    }
    req.end();
  });
}

async function h2(port: number, headers: http2.OutgoingHttpHeaders, websocket = false) {
  const session = http2.connect(`http://127.0.0.1:${port}`);
  try {
    if (websocket) await new Promise((r) => session.once("remoteSettings", r));
    const stream = session.request(
      websocket
        ? {
            ":method": "CONNECT",
            ":protocol": "websocket",
            ":path": "/chat",
            "sec-websocket-version": "13",
            ...headers,
          }
        : { ":path": "/orders", ...headers },
      { endStream: !websocket },
    );
    const status = await new Promise<number>((resolve, reject) => {
      stream.once("response", (h) => resolve(Number(h[":status"])));
      stream.once("error", reject);
    });
    stream.close();
    return status;
  } finally {
    session.destroy();
  }
}

function http1WebSocket(port: number, headers: http.OutgoingHttpHeaders) {
  return new Promise<number>((resolve, reject) => {
    const req = http.request({
      host: "127.0.0.1",
      port,
      path: "/chat",
      agent: false,
      headers: {
        connection: "Upgrade",
        upgrade: "websocket",
        "sec-websocket-version": "13",
        "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
        ...headers,
      },
    });
    req.once("upgrade", (res, socket) => {
      socket.destroy();
      resolve(res.statusCode!);
    });
    req.once("response", (res) => {
      res.resume();
      resolve(res.statusCode!);
    });
    req.on("error", reject);
    req.end();
  });
}

describe("identity headers in any spelling never reach the app", () => {
  it("HTTP/1.1 callers", async () => {
    expect(await http1(sidecar.proxyPort, { ...bearer(), ...SPOOFED, ...SPOOFED_MIXED_CASE })).toBe(200);
    expect(identityOf(app.last().headers)).toEqual(alice());
  });

  it("HTTP/2 (h2c) callers", async () => {
    expect(await h2(sidecar.proxyPort, { ...bearer(), ...SPOOFED })).toBe(200);
    expect(identityOf(app.last().headers)).toEqual(alice());
  });

  it("WebSocket handshakes over HTTP/1.1 and HTTP/2 (extended CONNECT)", async () => {
    expect(await http1WebSocket(sidecar.proxyPort, { ...bearer(), ...SPOOFED, ...SPOOFED_MIXED_CASE })).toBe(
      101,
    );
    expect(app.last().kind).toBe("upgrade");
    expect(identityOf(app.last().headers)).toEqual(alice());
    expect(await h2(sidecar.proxyPort, { ...bearer(), ...SPOOFED }, true)).toBe(200);
    expect(app.last().kind).toBe("upgrade");
    expect(identityOf(app.last().headers)).toEqual(alice());
  });

  it("request trailers", async () => {
    expect(
      await http1(
        sidecar.proxyPort,
        { ...bearer(), "transfer-encoding": "chunked" },
        { ...SPOOFED, "x-checksum": "c0ffee" },
      ),
    ).toBe(200);
    expect(app.last().trailers).toEqual({ "x-checksum": "c0ffee" });
  });

  it("ext_authz lists every caller-sent spelling in headers_to_remove", async () => {
    const res = await check(sidecar.controlPort, {
      ...bearer(),
      ...SPOOFED,
      "x-gatehouse-subject": "mallory",
    });
    if (res.httpResponse.case !== "okResponse") throw new Error("expected ok");
    expect(res.httpResponse.value.headersToRemove.sort()).toEqual(Object.keys(SPOOFED).sort());
    const set = res.httpResponse.value.headers.map((h) => h.header!.key);
    expect(set).toContain("x-gatehouse-subject");
  });
});

describe("X-Forwarded-* and Forwarded", () => {
  it("are overwritten from the connection for a caller that is not a trusted proxy", async () => {
    expect(await http1(sidecar.proxyPort, { ...bearer(), ...FORWARDING })).toBe(200);
    const port = sidecar.proxyPort;
    expect(app.last().headers).toMatchObject({
      "x-forwarded-for": "127.0.0.1",
      "x-forwarded-host": `127.0.0.1:${port}`,
      "x-forwarded-proto": "http",
    });
    expect(app.last().headers).not.toHaveProperty("forwarded");
    expect(await h2(port, { ...bearer(), ...FORWARDING })).toBe(200);
    expect(app.last().headers).toMatchObject({ "x-forwarded-for": "127.0.0.1", "x-forwarded-proto": "http" });
    expect(await http1WebSocket(port, { ...bearer(), ...FORWARDING })).toBe(101);
    expect(app.last().headers).toMatchObject({
      "x-forwarded-for": "127.0.0.1",
      "x-forwarded-host": `127.0.0.1:${port}`,
    });
  });

  it("are appended to (For, Forwarded) and kept (Host, Proto) from a trusted proxy", async () => {
    expect(await http1(behindProxy.proxyPort, { ...bearer(), ...FORWARDING })).toBe(200);
    expect(app.last().headers).toMatchObject({
      "x-forwarded-for": "6.6.6.6, 127.0.0.1",
      "x-forwarded-host": "evil.example",
      "x-forwarded-proto": "https",
      forwarded: "for=6.6.6.6;proto=https, for=127.0.0.1",
    });
    // A trusted proxy that sends none: the sidecar's own values.
    expect(await http1(behindProxy.proxyPort, bearer())).toBe(200);
    expect(app.last().headers).toMatchObject({ "x-forwarded-for": "127.0.0.1", "x-forwarded-proto": "http" });
  });
});

const AuthorizationClient = grpc.makeGenericClientConstructor(
  grpcServiceDefinition(Authorization),
  "Authorization",
);

function check(port: number, headers: Record<string, string>): Promise<CheckResponse> {
  const client = new AuthorizationClient(
    `127.0.0.1:${port}`,
    grpc.credentials.createInsecure(),
  ) as unknown as grpc.Client & {
    check(req: unknown, cb: (err: Error | null, res: CheckResponse) => void): void;
  };
  return new Promise((resolve, reject) => {
    client.check(
      create(Authorization.method.check.input, {
        attributes: { request: { http: { method: "GET", path: "/orders", headers } } },
      }),
      (err: Error | null, res: CheckResponse) => {
        client.close();
        if (err) reject(err);
        else resolve(res);
      },
    );
  });
}
