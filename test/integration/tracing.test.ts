import { randomBytes } from "node:crypto";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { create } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type OtlpReceiver, type ReceivedSpan, startOtlpReceiver } from "../../bench/lib/otlp-receiver.ts";
import { HeaderValueOption_HeaderAppendAction } from "../../services/gen/proto/envoy/config/core/v3/base_pb.ts";
import {
  Authorization,
  type CheckResponse,
} from "../../services/gen/proto/envoy/service/auth/v3/external_auth_pb.ts";
import { TokenService } from "../../services/gen/proto/gatehouse/v1/token_service_pb.ts";
import { grpcServiceDefinition } from "../../services/shared/rpc/grpc-service-definition.ts";
import { loadSettings } from "../../services/shared/settings/index.ts";
import { startTracing, type Tracing } from "../../services/shared/tracing/tracing.ts";
import { tracingSettings } from "../../services/shared/tracing/tracing-settings.ts";
import type { RunningSidecar } from "../../services/sidecar/sidecar.ts";
import { basicAuthorization } from "../../services/token/clients/basic-credentials.ts";
import { type TestDatabase, useTestDatabase } from "../support/database.ts";
import {
  removePolicies,
  silentLogger,
  startTestSidecar,
  startTestTokenService,
  type TestTokenService,
  writePolicy,
} from "../support/sidecar-fixtures.ts";
import { grpcTokenClient } from "../support/token-clients.ts";
import { createTestClient } from "../support/token-fixtures.ts";

const POLICY = `
rules:
  - match: { path: /gatehouse.v1.TokenService/Refresh }
    public: true
  - match: { path: /public }
    public: true
  - match: { prefix: /private }
    scopes: { allOf: [orders:read] }
`;

const SERVER = 2;
const INTERNAL = 1;
const ERROR = 2;

let tdb: TestDatabase;
let receiver: OtlpReceiver;
let tokenTracing: Tracing;
let sidecarTracing: Tracing;
let ts: TestTokenService;
let sidecar: RunningSidecar;
let caller: { id: string; secret: string };

/** Tracing as `gatehouse serve`/`sidecar` start it from this environment. */
async function tracingFrom(env: Record<string, string>, serviceName: string): Promise<Tracing | undefined> {
  return startTracing(loadSettings(tracingSettings(serviceName), { env }), silentLogger());
}

/** A caller's W3C context: a fresh trace id and parent span id, sampled. */
function callerContext() {
  const traceId = randomBytes(16).toString("hex");
  const parentId = randomBytes(8).toString("hex");
  return { traceId, parentId, traceparent: `00-${traceId}-${parentId}-01` };
}

/** Flushes both services' exporters and returns the spans of one trace. */
async function spansOf(traceId: string, count: number): Promise<ReceivedSpan[]> {
  await expect
    .poll(() => receiver.spans().filter((s) => s.traceId === traceId).length >= count, { timeout: 10_000 })
    .toBeTruthy();
  return receiver.spans().filter((s) => s.traceId === traceId);
}

function only(spans: ReceivedSpan[], service: string, name: string): ReceivedSpan {
  const found = spans.filter((s) => s.service === service && s.name === name);
  expect(found.map((s) => s.name)).toEqual([name]);
  return found[0]!;
}

beforeAll(async () => {
  tdb = await useTestDatabase();
  receiver = await startOtlpReceiver();
  // A short export delay: the test waits for spans instead of flushing by shutdown.
  tokenTracing = (await tracingFrom(
    { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint, OTEL_BSP_SCHEDULE_DELAY: "50" },
    "gatehouse-token",
  ))!;
  sidecarTracing = (await tracingFrom(
    {
      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `${receiver.endpoint}/v1/traces`,
      OTEL_SERVICE_NAME: "edge",
      OTEL_BSP_SCHEDULE_DELAY: "50",
    },
    "gatehouse-sidecar",
  ))!;
  ts = await startTestTokenService(tdb, { tracing: tokenTracing });
  const client = await createTestClient(tdb.db.prisma, { id: "mobile", roles: ["issuer"] });
  caller = { id: "mobile", secret: client.secret };
  sidecar = await startTestSidecar(
    {
      GATEHOUSE_TOKEN_SERVICE_URL: ts.url,
      GATEHOUSE_POLICY_FILE: writePolicy(POLICY),
      GATEHOUSE_UPSTREAM: ts.url,
    },
    { tracing: sidecarTracing },
  );
});
afterAll(async () => {
  await sidecar?.shutdown(100);
  await ts?.service.shutdown();
  await sidecarTracing?.shutdown();
  await tokenTracing?.shutdown();
  await receiver?.close();
  await tdb?.drop();
  removePolicies();
});

async function issueRefreshToken(): Promise<string> {
  const issued = await grpcTokenClient(ts.service.grpcPort, caller).issue({
    subject: `user-${randomBytes(4).toString("hex")}`,
    audience: ["orders"],
    scopes: ["orders:read"],
  });
  return issued.refreshToken;
}

describe("a Refresh through the sidecar proxy (Connect protocol)", () => {
  it("is one trace: caller → sidecar proxy span → token service span → its flow", async () => {
    const refreshToken = await issueRefreshToken();
    const ctx = callerContext();
    const res = await fetch(`http://127.0.0.1:${sidecar.proxyPort}/gatehouse.v1.TokenService/Refresh`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        authorization: basicAuthorization(caller.id, caller.secret),
        traceparent: ctx.traceparent,
        tracestate: "vendor=abc",
      },
      body: JSON.stringify({ refreshToken }),
    });
    const body = (await res.json()) as { refreshToken?: string };
    expect(res.status).toBe(200);
    expect(body.refreshToken).toMatch(/^gthr_/);

    const spans = await spansOf(ctx.traceId, 5);
    const proxy = only(spans, "edge", "proxy POST");
    expect(proxy).toMatchObject({ kind: SERVER, parentSpanId: ctx.parentId });
    expect(proxy.attributes).toMatchObject({
      "gatehouse.mode": "proxy",
      "url.path": "/gatehouse.v1.TokenService/Refresh",
      "http.response.status_code": 200,
    });
    const verify = only(spans, "edge", "verify");
    expect(verify).toMatchObject({ kind: INTERNAL, parentSpanId: proxy.spanId });

    const rpc = only(spans, "gatehouse-token", "gatehouse.v1.TokenService/Refresh");
    expect(rpc).toMatchObject({ kind: SERVER, parentSpanId: proxy.spanId, statusCode: 0 });
    expect(rpc.attributes).toMatchObject({
      "rpc.system": "connect_rpc",
      "rpc.service": "gatehouse.v1.TokenService",
      "rpc.method": "Refresh",
      "rpc.grpc.status_code": 0,
    });
    expect(only(spans, "gatehouse-token", "authenticate caller").parentSpanId).toBe(rpc.spanId);
    expect(only(spans, "gatehouse-token", "Refresh flow").parentSpanId).toBe(rpc.spanId);

    // Neither token nor secret is ever exported.
    const exported = receiver.bodies().join("\n");
    expect(exported).not.toContain(refreshToken);
    expect(exported).not.toContain(body.refreshToken);
    expect(exported).not.toContain(caller.secret);
  });

  it("records a refused Refresh with its Gatehouse reason", async () => {
    const ctx = callerContext();
    const res = await fetch(`http://127.0.0.1:${sidecar.proxyPort}/gatehouse.v1.TokenService/Refresh`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        authorization: basicAuthorization(caller.id, caller.secret),
        traceparent: ctx.traceparent,
      },
      body: JSON.stringify({ refreshToken: `gthr_${"A".repeat(43)}` }),
    });
    expect(res.status).toBeGreaterThanOrEqual(400);
    const spans = await spansOf(ctx.traceId, 5);
    const rpc = only(spans, "gatehouse-token", "gatehouse.v1.TokenService/Refresh");
    expect(rpc.statusCode).toBe(ERROR);
    expect(rpc.attributes["gatehouse.reason"]).toBe("invalid_grant");
  });
});

describe("the sidecar's own spans", () => {
  it("a proxy refusal ends the span with the reason and sends nothing upstream", async () => {
    const ctx = callerContext();
    const res = await fetch(`http://127.0.0.1:${sidecar.proxyPort}/private/x`, {
      headers: { traceparent: ctx.traceparent },
    });
    expect(res.status).toBe(401);
    const spans = await spansOf(ctx.traceId, 2);
    const proxy = only(spans, "edge", "proxy GET");
    expect(proxy).toMatchObject({ parentSpanId: ctx.parentId, statusCode: ERROR });
    expect(proxy.attributes["gatehouse.reason"]).toBe("missing_token");
    expect(spans.filter((s) => s.service === "gatehouse-token")).toEqual([]);
  });

  it("forward-auth answers a traceparent naming its span, for the front proxy to pass on", async () => {
    const ctx = callerContext();
    const res = await fetch(`http://127.0.0.1:${sidecar.controlPort}/authz`, {
      headers: { traceparent: ctx.traceparent, "x-forwarded-method": "GET", "x-forwarded-uri": "/public" },
    });
    expect(res.status).toBe(200);
    const traceparent = res.headers.get("traceparent");
    const spans = await spansOf(ctx.traceId, 2);
    const span = only(spans, "edge", "forward_auth GET");
    expect(span.parentSpanId).toBe(ctx.parentId);
    expect(traceparent).toBe(`00-${ctx.traceId}-${span.spanId}-01`);
  });

  it("ext_authz sets traceparent upstream, naming its span, and keeps tracestate", async () => {
    const ctx = callerContext();
    const answer = await check(sidecar.controlPort, {
      method: "GET",
      path: "/public",
      headers: { traceparent: ctx.traceparent, tracestate: "vendor=abc" },
    });
    expect(answer.status?.code).toBe(0);
    const set = answer.httpResponse.case === "okResponse" ? answer.httpResponse.value.headers : [];
    const byName = new Map(set.map((h) => [h.header?.key, h]));
    const spans = await spansOf(ctx.traceId, 2);
    const span = only(spans, "edge", "ext_authz GET");
    expect(span.parentSpanId).toBe(ctx.parentId);
    expect(byName.get("traceparent")?.header?.value).toBe(`00-${ctx.traceId}-${span.spanId}-01`);
    expect(byName.get("traceparent")?.appendAction).toBe(
      HeaderValueOption_HeaderAppendAction.OVERWRITE_IF_EXISTS_OR_ADD,
    );
    expect(byName.get("tracestate")?.header?.value).toBe("vendor=abc");
  });

  it("a malformed traceparent starts a new trace instead of failing the request", async () => {
    const before = receiver.spans().length;
    const res = await fetch(`http://127.0.0.1:${sidecar.controlPort}/authz`, {
      headers: { traceparent: "00-zzzz-not-a-context", "x-forwarded-uri": "/public" },
    });
    expect(res.status).toBe(200);
    const traceparent = res.headers.get("traceparent") ?? "";
    expect(traceparent).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    const traceId = traceparent.split("-")[1]!;
    const span = only(await spansOf(traceId, 2), "edge", "forward_auth GET");
    expect(span.parentSpanId).toBe("");
    expect(receiver.spans().length).toBeGreaterThan(before);
  });
});

describe("native gRPC", () => {
  it("continues the caller's trace from its metadata", async () => {
    const ctx = callerContext();
    const metadata = new grpc.Metadata();
    metadata.set("traceparent", ctx.traceparent);
    metadata.set("authorization", basicAuthorization(caller.id, caller.secret));
    const client = new TokenServiceClient(
      `127.0.0.1:${ts.service.grpcPort}`,
      grpc.credentials.createInsecure(),
    );
    await new Promise<void>((resolve, reject) =>
      (client as unknown as { issue: (...args: unknown[]) => void }).issue(
        create(TokenService.method.issue.input, { subject: "grpc-user", audience: ["orders"] }),
        metadata,
        (err: Error | null) => {
          client.close();
          if (err) reject(err);
          else resolve();
        },
      ),
    );
    const spans = await spansOf(ctx.traceId, 3);
    const rpc = only(spans, "gatehouse-token", "gatehouse.v1.TokenService/Issue");
    expect(rpc).toMatchObject({ kind: SERVER, parentSpanId: ctx.parentId });
    expect(rpc.attributes["rpc.system"]).toBe("grpc");
    expect(only(spans, "gatehouse-token", "Issue flow").parentSpanId).toBe(rpc.spanId);
  });

  it("OAuth form posts are spans too, named by the method they ran", async () => {
    const refreshToken = await issueRefreshToken();
    const ctx = callerContext();
    const res = await fetch(`${ts.url}/oauth2/token`, {
      method: "POST",
      headers: {
        "content-type": "application/x-www-form-urlencoded",
        authorization: basicAuthorization(caller.id, caller.secret),
        traceparent: ctx.traceparent,
      },
      body: new URLSearchParams({ grant_type: "refresh_token", refresh_token: refreshToken }).toString(),
    });
    expect(res.status).toBe(200);
    const [rpc] = await spansOf(ctx.traceId, 1);
    expect(rpc).toMatchObject({ service: "gatehouse-token", parentSpanId: ctx.parentId });
    expect(rpc!.attributes).toMatchObject({ "rpc.system": "oauth2", "rpc.method": "Refresh" });
  });
});

describe("with tracing off", () => {
  it("no OTLP endpoint (or OTEL_SDK_DISABLED) means no tracing object at all", async () => {
    expect(await tracingFrom({}, "x")).toBeUndefined();
    expect(
      await tracingFrom({ OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint, OTEL_SDK_DISABLED: "true" }, "x"),
    ).toBeUndefined();
  });

  it("the proxy passes the caller's trace context to the app untouched, and nothing is exported", async () => {
    const seen: http.IncomingHttpHeaders[] = [];
    const app = http.createServer((req, res) => {
      seen.push(req.headers);
      res.end("ok");
    });
    await new Promise<void>((resolve) => app.listen(0, "127.0.0.1", resolve));
    const plain = await startTestSidecar({
      GATEHOUSE_TOKEN_SERVICE_URL: ts.url,
      GATEHOUSE_POLICY_FILE: writePolicy(POLICY),
      GATEHOUSE_UPSTREAM: `http://127.0.0.1:${(app.address() as AddressInfo).port}`,
    });
    try {
      const ctx = callerContext();
      const res = await fetch(`http://127.0.0.1:${plain.proxyPort}/public`, {
        headers: { traceparent: ctx.traceparent, tracestate: "vendor=abc" },
      });
      expect(res.status).toBe(200);
      expect(seen[0]).toMatchObject({ traceparent: ctx.traceparent, tracestate: "vendor=abc" });
      const authz = await fetch(`http://127.0.0.1:${plain.controlPort}/authz`, {
        headers: { traceparent: ctx.traceparent, "x-forwarded-uri": "/public" },
      });
      expect(authz.status).toBe(200);
      expect(authz.headers.get("traceparent")).toBeNull();
      // The traced sidecar's exporter flushes every 50 ms: give it the time to show nothing came.
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(receiver.spans().filter((s) => s.traceId === ctx.traceId)).toEqual([]);
    } finally {
      await plain.shutdown(100);
      await new Promise((resolve) => app.close(resolve));
    }
  });
});

const TokenServiceClient = grpc.makeGenericClientConstructor(
  grpcServiceDefinition(TokenService),
  "TokenService",
);
const AuthorizationClient = grpc.makeGenericClientConstructor(
  grpcServiceDefinition(Authorization),
  "Authorization",
);

function check(
  port: number,
  http: { method: string; path: string; headers: Record<string, string> },
): Promise<CheckResponse> {
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
