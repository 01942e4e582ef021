import { fromBinary } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { ErrorInfoSchema } from "../../services/gen/proto/google/rpc/error_details_pb.ts";
import { StatusSchema } from "../../services/gen/proto/google/rpc/status_pb.ts";
import { GatehouseError } from "../../services/shared/errors/gatehouse-error.ts";
import { encodeGrpcMessage } from "../../services/shared/rpc/grpc-wire.ts";
import { denialOf } from "../../services/sidecar/control/denial.ts";
import { bearerToken, pathOf, queryOf } from "../../services/sidecar/control/guard.ts";
import { identityHeaders } from "../../services/sidecar/control/identity-headers.ts";
import {
  forwardableTrailers,
  requestHeadersForUpstream,
  requestTrailersForUpstream,
  responseHeadersForCaller,
} from "../../services/sidecar/proxy/forward-headers.ts";
import { trustedProxies } from "../../services/sidecar/proxy/trusted-proxies.ts";
import { parseUpstream } from "../../services/sidecar/proxy/upstream.ts";
import { bearerToken as inProcessBearerToken } from "../../services/sidecar/verifier/in-process.ts";

describe("denialOf", () => {
  it.each([
    ["missing_token", "no bearer token", {}, 401, 16, 'Bearer realm="gatehouse"'],
    [
      "bad_signature",
      "signature does not verify",
      {},
      401,
      16,
      'Bearer realm="gatehouse", error="invalid_token", error_description="bad_signature"',
    ],
    [
      "insufficient_scope",
      "token lacks scope a:b",
      { scope: "a:b c:d" },
      403,
      7,
      'Bearer realm="gatehouse", error="insufficient_scope", error_description="insufficient_scope", scope="a:b c:d"',
    ],
    [
      "invalid_request",
      "path not normal",
      {},
      400,
      3,
      'Bearer realm="gatehouse", error="invalid_request", error_description="invalid_request"',
    ],
    ["internal", "db exploded", {}, 500, 13, undefined],
  ] as const)("%s → HTTP %i, gRPC %i", (code, message, metadata, http, grpc, challenge) => {
    const d = denialOf(new GatehouseError(code, message, { metadata }));
    expect(d).toMatchObject({ httpStatus: http, grpcStatus: grpc, wwwAuthenticate: challenge });
    const expectedMessage = code === "internal" ? "internal error" : message;
    expect(JSON.parse(d.body)).toEqual({ error: code, message: expectedMessage });
    const status = fromBinary(StatusSchema, Buffer.from(d.grpcStatusDetails, "base64"));
    expect(status).toMatchObject({ code: grpc, message: expectedMessage });
    const info = fromBinary(ErrorInfoSchema, status.details[0]!.value);
    expect(info).toMatchObject({ reason: code, domain: "gatehouse" });
  });

  it("says when to retry", () => {
    const d = denialOf(new GatehouseError("revocation_state_stale", "stale", { retryAfterMs: 1500 }));
    expect(d.retryAfter).toBe("2");
    expect(fromBinary(StatusSchema, Buffer.from(d.grpcStatusDetails, "base64")).details).toHaveLength(2);
  });

  it("percent-encodes grpc-message as the gRPC spec asks", () => {
    expect(encodeGrpcMessage("plain text")).toBe("plain text");
    expect(encodeGrpcMessage("100% héllo\n")).toBe("100%25 h%C3%A9llo%0A");
  });
});

describe("bearerToken", () => {
  it.each([
    [undefined],
    ["Bearer abc.def.ghi"],
    ["bearer abc.def.ghi"],
    ["  Bearer   abc"],
    ["Basic dXNlcjpwdw=="],
    ["Bearer"],
    ["Bearer a b"],
    ["Bearer a,Bearer b"],
    [["Bearer a", "Bearer b"]],
    [["Bearer a"]],
    [[]],
  ])("reads %j exactly like the in-process authenticator", (value) => {
    const outcome = (f: () => string) => {
      try {
        return f();
      } catch (err) {
        return (err as GatehouseError).code;
      }
    };
    expect(outcome(() => bearerToken(value))).toBe(outcome(() => inProcessBearerToken(value)));
  });
});

describe("forwarded headers", () => {
  it("drops hop-by-hop, connection-listed, pseudo and x-gatehouse-* headers; keeps te: trailers", () => {
    const out = requestHeadersForUpstream(
      {
        ":path": "/x",
        host: "app",
        connection: "keep-alive, X-Secret",
        "x-secret": "1",
        "keep-alive": "timeout=5",
        "proxy-authorization": "Basic x",
        "transfer-encoding": "chunked",
        upgrade: "h2c",
        te: "trailers, deflate",
        "x-gatehouse-subject": "mallory",
        x_gatehouse_subject: "mallory",
        "X-Gatehouse_Scopes": "admin",
        "x-gatehouse_jwt": "forged",
        authorization: "Bearer t",
        accept: "*/*",
        "x-forwarded-for": "10.0.0.1",
      },
      { stripAuthorization: false, remoteAddress: "127.0.0.1", authority: "app", trustedProxy: () => true },
    );
    expect(out).toEqual({
      te: "trailers",
      authorization: "Bearer t",
      accept: "*/*",
      "x-forwarded-for": "10.0.0.1, 127.0.0.1",
      "x-forwarded-proto": "http",
      "x-forwarded-host": "app",
    });
  });

  it("strips authorization when told, and keeps the WebSocket handshake headers", () => {
    const out = requestHeadersForUpstream(
      { authorization: "Bearer t", connection: "Upgrade", upgrade: "websocket", "sec-websocket-key": "k" },
      {
        stripAuthorization: true,
        websocket: true,
        remoteAddress: undefined,
        authority: undefined,
        trustedProxy: () => true,
      },
    );
    expect(out).toMatchObject({ connection: "upgrade", upgrade: "websocket", "sec-websocket-key": "k" });
    expect(out).not.toHaveProperty("authorization");
  });

  const spoofed = {
    "x-forwarded-for": "6.6.6.6",
    "x-forwarded-host": "evil.example",
    "x-forwarded-proto": "https",
    forwarded: "for=6.6.6.6;proto=https",
  };

  it.each([
    [
      "an untrusted peer: overwritten, forwarded dropped",
      "10.0.0.9",
      {
        "x-forwarded-for": "10.0.0.9",
        "x-forwarded-host": "app",
        "x-forwarded-proto": "http",
      },
    ],
    [
      "a trusted IPv4 proxy: appended to and kept",
      "10.0.0.1",
      {
        "x-forwarded-for": "6.6.6.6, 10.0.0.1",
        "x-forwarded-host": "evil.example",
        "x-forwarded-proto": "https",
        forwarded: "for=6.6.6.6;proto=https, for=10.0.0.1",
      },
    ],
    [
      "a trusted IPv4 proxy on a dual-stack socket",
      "::ffff:10.0.0.1",
      {
        "x-forwarded-for": "6.6.6.6, ::ffff:10.0.0.1",
        forwarded: 'for=6.6.6.6;proto=https, for="[::ffff:10.0.0.1]"',
      },
    ],
    [
      "a trusted IPv6 proxy",
      "fd00::7",
      {
        "x-forwarded-for": "6.6.6.6, fd00::7",
        forwarded: 'for=6.6.6.6;proto=https, for="[fd00::7]"',
      },
    ],
    [
      "an IPv6 peer outside the ranges",
      "fe80::1",
      { "x-forwarded-for": "fe80::1", "x-forwarded-proto": "http" },
    ],
  ])("sets x-forwarded-* and forwarded for %s", (_name, peer, expected) => {
    const out = requestHeadersForUpstream(spoofed, {
      stripAuthorization: false,
      remoteAddress: peer,
      authority: "app",
      trustedProxy: trustedProxies(["10.0.0.1", "fd00::/8"]),
    });
    expect(out).toMatchObject(expected);
    if (!("forwarded" in expected)) expect(out).not.toHaveProperty("forwarded");
  });

  it("trusts no one without ranges", () => {
    expect(trustedProxies([])("127.0.0.1")).toBe(false);
    expect(trustedProxies(["127.0.0.0/8"])("127.3.2.1")).toBe(true);
    expect(trustedProxies(["::1"])("::1")).toBe(true);
  });

  it("drops underscore and mixed-case spellings of identity headers from request trailers", () => {
    expect(
      requestTrailersForUpstream({ x_gatehouse_subject: "m", "x-gatehouse_jwt": "f", "x-checksum": "1" }),
    ).toEqual({ "x-checksum": "1" });
  });

  it("passes response headers and trailers on without hop-by-hop ones", () => {
    expect(
      responseHeadersForCaller({
        ":status": "200",
        "set-cookie": ["a=1", "b=2"],
        trailer: "grpc-status",
        "transfer-encoding": "chunked",
        connection: "close",
      }),
    ).toEqual({ "set-cookie": ["a=1", "b=2"], trailer: "grpc-status" });
    expect(forwardableTrailers({ "grpc-status": "0" })).toEqual({ "grpc-status": "0" });
    expect(forwardableTrailers({})).toBeUndefined();
  });
});

describe("small parts", () => {
  it("splits request targets", () => {
    expect([pathOf("/a/b?c=1#f"), queryOf("/a/b?c=1#f")]).toEqual(["/a/b", "?c=1"]);
    expect([pathOf("/a"), queryOf("/a")]).toEqual(["/a", ""]);
  });

  it("renders identity headers safely", () => {
    const headers = identityHeaders(
      {
        subject: "zoë",
        clientId: "web",
        scopes: ["a", "b"],
        audience: ["orders"],
        jti: "j",
        expiresAt: 0,
        issuedAt: 0,
        kid: "k",
        claims: {},
        token: "t.t.t",
      },
      true,
    );
    expect(Object.fromEntries(headers)).toEqual({
      "x-gatehouse-subject": "zo%C3%AB",
      "x-gatehouse-client-id": "web",
      "x-gatehouse-scopes": "a b",
      "x-gatehouse-jwt": "t.t.t",
    });
  });

  it("takes an upstream origin and nothing more", () => {
    expect(parseUpstream("h2c://app:50051")).toEqual({ protocol: "h2c", host: "app", port: 50051 });
    expect(parseUpstream("http://[::1]:8080")).toEqual({ protocol: "http", host: "::1", port: 8080 });
    expect(() => parseUpstream("http://app:8080/base")).toThrow(TypeError);
    expect(() => parseUpstream("https://app")).toThrow(TypeError);
  });
});
