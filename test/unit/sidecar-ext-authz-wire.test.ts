import { create, fromBinary, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { describe, expect, it } from "vitest";
import { HeaderValueOption_HeaderAppendAction } from "../../services/gen/proto/envoy/config/core/v3/base_pb.ts";
import {
  CheckRequestSchema,
  CheckResponseSchema,
} from "../../services/gen/proto/envoy/service/auth/v3/external_auth_pb.ts";
import { okResponse } from "../../services/sidecar/ext-authz/check.ts";
import { readCheckRequest } from "../../services/sidecar/ext-authz/check-request.ts";

const encode = (init: MessageInitShape<typeof CheckRequestSchema>) =>
  toBinary(CheckRequestSchema, create(CheckRequestSchema, init));

describe("readCheckRequest", () => {
  it("reads method, path and headers of a full Envoy-like request, skipping everything else", () => {
    const bytes = encode({
      attributes: {
        source: { principal: "spiffe://cluster.local/ns/a/sa/web", labels: { app: "web" } },
        destination: { service: "orders" },
        request: {
          time: { seconds: 1_800_000_000n, nanos: 5 },
          http: {
            id: "req-1",
            method: "POST",
            path: "/orders?x=1",
            host: "orders",
            size: -1n,
            headers: { ":path": "/orders?x=1", authorization: "Bearer t", "x-b3-sampled": "1" },
            body: "ignored",
            rawBody: new Uint8Array([1, 2, 3]),
          },
        },
        contextExtensions: { vhost: "orders" },
        metadataContext: { filterMetadata: { "envoy.lb": { canary: true } } },
        tlsSession: { sni: "orders.example" },
      },
    });
    expect(readCheckRequest(bytes)).toEqual({
      method: "POST",
      path: "/orders?x=1",
      headers: { ":path": "/orders?x=1", authorization: "Bearer t", "x-b3-sampled": "1" },
    });
  });

  it("reads header_map (encode_raw_headers), joining repeated headers", () => {
    const bytes = encode({
      attributes: {
        request: {
          http: {
            method: "GET",
            path: "/",
            headerMap: {
              headers: [
                { key: "Authorization", rawValue: new TextEncoder().encode("Bearer t") },
                { key: "x-a", value: "1" },
                { key: "X-A", rawValue: new TextEncoder().encode("2") },
              ],
            },
          },
        },
      },
    });
    expect(readCheckRequest(bytes)?.headers).toEqual({ authorization: "Bearer t", "x-a": "1,2" });
  });

  it("merges repeated embedded messages and lets the last scalar win, like the generated decoder", () => {
    const part = (http: MessageInitShape<typeof CheckRequestSchema>) => encode(http);
    const bytes = Buffer.concat([
      part({ attributes: { request: { http: { method: "GET", headers: { a: "1" } } } } }),
      part({ attributes: { request: { http: { method: "PUT", path: "/p", headers: { b: "2" } } } } }),
    ]);
    const generated = fromBinary(CheckRequestSchema, bytes).attributes!.request!.http!;
    expect(readCheckRequest(bytes)).toEqual({
      method: generated.method,
      path: generated.path,
      headers: generated.headers,
    });
    expect(generated.method).toBe("PUT");
  });

  it("skips unknown fields of every wire type", () => {
    const w = new BinaryWriter();
    w.tag(99, WireType.Varint).uint64(123n);
    w.tag(98, WireType.Bit64).fixed64(1n);
    w.tag(97, WireType.Bit32).fixed32(1);
    w.tag(96, WireType.LengthDelimited).string("x");
    const unknown = w.finish();
    const bytes = Buffer.concat([
      unknown,
      encode({ attributes: { request: { http: { method: "GET", path: "/u" } } } }),
    ]);
    expect(readCheckRequest(bytes)).toMatchObject({ method: "GET", path: "/u" });
  });

  it("says undefined without attributes.request.http, and throws on garbage", () => {
    expect(readCheckRequest(encode({ attributes: { contextExtensions: { a: "b" } } }))).toBeUndefined();
    expect(readCheckRequest(new Uint8Array())).toBeUndefined();
    expect(() => readCheckRequest(new Uint8Array([0x0a, 0x05, 0x01]))).toThrow();
  });
});

describe("okResponse", () => {
  it("is the CheckResponse the generated encoder would write", () => {
    const bytes = okResponse(
      [
        ["x-gatehouse-subject", "alice"],
        ["x-gatehouse-scopes", ""],
      ],
      ["x-gatehouse-role", "authorization"],
    );
    const decoded = fromBinary(CheckResponseSchema, bytes);
    expect(decoded.status?.code).toBe(0);
    expect(decoded.httpResponse.case).toBe("okResponse");
    if (decoded.httpResponse.case !== "okResponse") return;
    const ok = decoded.httpResponse.value;
    expect(ok.headers.map((h) => [h.header?.key, h.header?.value, h.appendAction])).toEqual([
      ["x-gatehouse-subject", "alice", HeaderValueOption_HeaderAppendAction.OVERWRITE_IF_EXISTS_OR_ADD],
      ["x-gatehouse-scopes", "", HeaderValueOption_HeaderAppendAction.OVERWRITE_IF_EXISTS_OR_ADD],
    ]);
    expect(ok.headersToRemove).toEqual(["x-gatehouse-role", "authorization"]);
    expect(Buffer.from(bytes)).toEqual(
      Buffer.from(
        toBinary(
          CheckResponseSchema,
          create(CheckResponseSchema, {
            status: {},
            httpResponse: {
              case: "okResponse",
              value: {
                headers: [
                  { header: { key: "x-gatehouse-subject", value: "alice" }, appendAction: 2 },
                  { header: { key: "x-gatehouse-scopes", value: "" }, appendAction: 2 },
                ],
                headersToRemove: ["x-gatehouse-role", "authorization"],
              },
            },
          }),
        ),
      ),
    );
  });
});
