// What the API contract in proto/ promises beyond its shape, checked through the generated
// protobuf-es code: which RPCs are side-effect free, where secrets may appear, JSON forms, and wire
// compatibility with what Envoy and gRPC clients put on (and read from) the wire, using bytes encoded
// by hand from the published field numbers. The shape itself (names, numbers, types) is guarded by
// `buf breaking` against main in `npm run check`, not restated here.
import { generateKeyPairSync, type JsonWebKey } from "node:crypto";
import {
  create,
  createRegistry,
  type DescField,
  type DescMessage,
  type DescService,
  fromBinary,
  fromJson,
  type JsonObject,
  ScalarType,
  toBinary,
  toJson,
} from "@bufbuild/protobuf";
import { anyPack, anyUnpack, MethodOptions_IdempotencyLevel } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
// Connect's own gRPC trailer codec (marked internal by Connect, pinned version): used here only to
// prove that the grpc-status-details-bin trailer it writes and reads is our google.rpc.Status.
import { findTrailerError, setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import { describe, expect, it } from "vitest";
import {
  HeaderValueOption_HeaderAppendAction,
  HeaderValueOptionSchema,
} from "../../services/gen/proto/envoy/config/core/v3/base_pb.ts";
import {
  Authorization,
  CheckRequestSchema,
  CheckResponseSchema,
} from "../../services/gen/proto/envoy/service/auth/v3/external_auth_pb.ts";
import { StatusCode } from "../../services/gen/proto/envoy/type/v3/http_status_pb.ts";
import {
  AdminService,
  ClientRole,
  ClientSchema,
  SigningKeySchema,
} from "../../services/gen/proto/gatehouse/v1/admin_service_pb.ts";
import {
  GetJwksResponseSchema,
  IssueResponseSchema,
  RefreshResponseSchema,
  TokenService,
} from "../../services/gen/proto/gatehouse/v1/token_service_pb.ts";
import { JwkSchema } from "../../services/gen/proto/gatehouse/v1/types_pb.ts";
import { ErrorInfoSchema, RetryInfoSchema } from "../../services/gen/proto/google/rpc/error_details_pb.ts";
import { StatusSchema } from "../../services/gen/proto/google/rpc/status_pb.ts";

// --- helpers --------------------------------------------------------------------------------

/** "name:type" for every field, e.g. "audience:repeated string", "claims:google.protobuf.Struct". */
function fieldSignatures(desc: DescMessage): string[] {
  const scalar = (t: ScalarType): string => ScalarType[t].toLowerCase();
  const type = (f: DescField): string => {
    switch (f.fieldKind) {
      case "scalar":
        return scalar(f.scalar);
      case "enum":
        return f.enum.typeName;
      case "message":
        return f.message.typeName;
      case "list": {
        const element =
          f.listKind === "scalar" ? scalar(f.scalar) : (f.listKind === "enum" ? f.enum : f.message).typeName;
        return `repeated ${element}`;
      }
      case "map": {
        const value =
          f.mapKind === "scalar" ? scalar(f.scalar) : (f.mapKind === "enum" ? f.enum : f.message).typeName;
        return `map<${scalar(f.mapKey)}, ${value}>`;
      }
    }
  };
  return desc.fields.map((f) => `${f.name}:${type(f)}`);
}

/** A node:crypto JWK as a protobuf-es JSON value (drops undefined members). */
function asJson(jwk: JsonWebKey): JsonObject {
  return JSON.parse(JSON.stringify(jwk));
}

function fieldNumbers(desc: DescMessage): Record<string, number> {
  return Object.fromEntries(desc.fields.map((f) => [f.name, f.number]));
}

/** The service's RPCs as "Name(Input) -> Output". */
function rpcSignatures(service: DescService): string[] {
  return service.methods.map((m) => `${m.name}(${m.input.name}) -> ${m.output.name}`);
}

// Minimal protobuf wire encoder, written from the encoding spec so that the bytes below do not
// depend on protobuf-es: varints, tags and length-delimited fields.
function varint(value: number | bigint): number[] {
  let v = BigInt.asUintN(64, BigInt(value));
  const out: number[] = [];
  while (v >= 0x80n) {
    out.push(Number(v & 0x7fn) | 0x80);
    v >>= 7n;
  }
  out.push(Number(v));
  return out;
}
const VARINT = 0;
const LEN = 2;
const tag = (field: number, wireType: number): number[] => varint((field << 3) | wireType);
const varintField = (field: number, value: number | bigint): number[] => [
  ...tag(field, VARINT),
  ...varint(value),
];
const lenField = (field: number, payload: number[]): number[] => [
  ...tag(field, LEN),
  ...varint(payload.length),
  ...payload,
];
const stringField = (field: number, s: string): number[] => lenField(field, [...new TextEncoder().encode(s)]);
const bytes = (...parts: number[][]): Uint8Array => new Uint8Array(parts.flat());

// --- TokenService ---------------------------------------------------------------------------

describe("gatehouse.v1.TokenService", () => {
  it("marks exactly the read-only RPCs side-effect free, so Connect clients can use GET", () => {
    const readOnly = TokenService.methods
      .filter((m) => m.idempotency === MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS)
      .map((m) => m.name);
    expect(readOnly).toEqual(["Introspect", "ListSessions", "GetJwks"]);
  });

  it("makes the Revoke target a oneof of refresh_token, access_token, session_id and subject", () => {
    const revoke = TokenService.method.revoke.input;
    expect(revoke.oneofs.map((o) => o.name)).toEqual(["target"]);
    expect(revoke.oneofs[0]!.fields.map((f) => f.name)).toEqual([
      "refresh_token",
      "access_token",
      "session_id",
      "subject",
    ]);
    const bin = toBinary(
      revoke,
      create(revoke, { target: { case: "sessionId", value: "s1" }, accessOnly: true }),
    );
    expect(fromBinary(revoke, bin)).toMatchObject({
      target: { case: "sessionId", value: "s1" },
      accessOnly: true,
    });
  });

  it("gives RefreshResponse the same fields, numbers and types as IssueResponse", () => {
    expect(fieldSignatures(RefreshResponseSchema)).toEqual(fieldSignatures(IssueResponseSchema));
    expect(fieldNumbers(RefreshResponseSchema)).toEqual(fieldNumbers(IssueResponseSchema));
  });
});

describe("gatehouse.v1.Jwk", () => {
  const keys = [
    generateKeyPairSync("ed25519").publicKey.export({ format: "jwk" }),
    generateKeyPairSync("ec", { namedCurve: "P-256" }).publicKey.export({ format: "jwk" }),
    generateKeyPairSync("rsa", { modulusLength: 2048 }).publicKey.export({ format: "jwk" }),
  ];
  const algs = ["EdDSA", "ES256", "RS256"];
  const published = keys.map(
    (jwk, i): JsonObject => ({ ...asJson(jwk), kid: `k${i}`, use: "sig", alg: algs[i]! }),
  );

  it("round-trips real Ed25519, P-256 and RSA public JWKs through its JSON form unchanged", () => {
    for (const jwk of published) {
      expect(toJson(JwkSchema, fromJson(JwkSchema, jwk))).toEqual(jwk);
    }
  });

  it("serializes GetJwksResponse as a standard JWK Set", () => {
    const response = fromJson(GetJwksResponseSchema, { keys: published });
    expect(response.keys.map((k) => k.kty)).toEqual(["OKP", "EC", "RSA"]);
    expect(
      toJson(
        GetJwksResponseSchema,
        fromBinary(GetJwksResponseSchema, toBinary(GetJwksResponseSchema, response)),
      ),
    ).toEqual({
      keys: published,
    });
  });

  it("has no field that could hold private key material", () => {
    const priv = generateKeyPairSync("ed25519").privateKey.export({ format: "jwk" });
    expect(() => fromJson(JwkSchema, asJson(priv))).toThrow(/"d"/);
    const privateMembers = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];
    expect(JwkSchema.fields.map((f) => f.name).filter((n) => privateMembers.includes(n))).toEqual([]);
  });
});

// --- AdminService ---------------------------------------------------------------------------

describe("gatehouse.v1.AdminService", () => {
  it("returns a client secret only from CreateClient and RotateClientSecret, and never a hash", () => {
    const withSecret = AdminService.methods
      .filter((m) => m.output.fields.some((f) => f.name === "client_secret"))
      .map((m) => m.name);
    expect(withSecret).toEqual(["CreateClient", "RotateClientSecret"]);
    // Timestamps such as secret_rotated_at are fine; no string or bytes field may hold secret material.
    for (const desc of [ClientSchema, SigningKeySchema]) {
      const secretish = fieldSignatures(desc).filter(
        (s) => /:(string|bytes)$/.test(s) && /secret|hash|private|password/.test(s),
      );
      expect(secretish, desc.typeName).toEqual([]);
    }
  });

  it("encodes client roles as prefixed enum names in JSON", () => {
    const client = create(ClientSchema, { clientId: "web", roles: [ClientRole.ISSUER, ClientRole.REVOKER] });
    expect(toJson(ClientSchema, client)).toEqual({
      clientId: "web",
      roles: ["CLIENT_ROLE_ISSUER", "CLIENT_ROLE_REVOKER"],
    });
  });
});

// --- google.rpc errors ----------------------------------------------------------------------

describe("google.rpc.Status with ErrorInfo", () => {
  const info = create(ErrorInfoSchema, {
    reason: "refresh_token_reused",
    domain: "gatehouse",
    metadata: { sessionId: "s1", requestId: "r1" },
  });

  it("carries ErrorInfo and RetryInfo in Any details across the binary wire", () => {
    const status = create(StatusSchema, {
      code: Code.Unauthenticated,
      message: "refresh token reused",
      details: [
        anyPack(ErrorInfoSchema, info),
        anyPack(RetryInfoSchema, create(RetryInfoSchema, { retryDelay: { seconds: 2n } })),
      ],
    });
    const decoded = fromBinary(StatusSchema, toBinary(StatusSchema, status));
    expect(decoded.code).toBe(16);
    expect(decoded.details.map((d) => d.typeUrl)).toEqual([
      "type.googleapis.com/google.rpc.ErrorInfo",
      "type.googleapis.com/google.rpc.RetryInfo",
    ]);
    expect(anyUnpack(decoded.details[0]!, ErrorInfoSchema)).toMatchObject({
      reason: "refresh_token_reused",
      domain: "gatehouse",
      metadata: { sessionId: "s1", requestId: "r1" },
    });
    expect(anyUnpack(decoded.details[1]!, RetryInfoSchema)?.retryDelay?.seconds).toBe(2n);
    const json = toJson(StatusSchema, decoded, {
      registry: createRegistry(ErrorInfoSchema, RetryInfoSchema),
    });
    expect(json).toMatchObject({
      code: 16,
      details: [
        {
          "@type": "type.googleapis.com/google.rpc.ErrorInfo",
          reason: "refresh_token_reused",
          domain: "gatehouse",
        },
        { "@type": "type.googleapis.com/google.rpc.RetryInfo", retryDelay: "2s" },
      ],
    });
  });

  it("is what gRPC puts in grpc-status-details-bin, in both directions", () => {
    // Server side: a ConnectError with an ErrorInfo detail becomes a trailer our Status decodes.
    const trailer = setTrailerStatus(
      new Headers(),
      new ConnectError("reused", Code.Unauthenticated, undefined, [{ desc: ErrorInfoSchema, value: info }]),
    );
    const status = fromBinary(StatusSchema, Buffer.from(trailer.get("grpc-status-details-bin")!, "base64"));
    expect(status.code).toBe(Code.Unauthenticated);
    expect(anyUnpack(status.details[0]!, ErrorInfoSchema)?.reason).toBe("refresh_token_reused");

    // Client side: a trailer carrying our Status is read back as a ConnectError with the detail.
    const incoming = new Headers({
      "grpc-status": "8",
      "grpc-message": "slow down",
      "grpc-status-details-bin": Buffer.from(
        toBinary(
          StatusSchema,
          create(StatusSchema, {
            code: Code.ResourceExhausted,
            message: "slow down",
            details: [
              anyPack(
                ErrorInfoSchema,
                create(ErrorInfoSchema, { reason: "rate_limited", domain: "gatehouse" }),
              ),
            ],
          }),
        ),
      ).toString("base64"),
    });
    const err = findTrailerError(incoming);
    expect(err?.code).toBe(Code.ResourceExhausted);
    expect(err?.findDetails(ErrorInfoSchema)).toMatchObject([
      { reason: "rate_limited", domain: "gatehouse" },
    ]);
  });
});

// --- Envoy ext_authz ------------------------------------------------------------------------

describe("envoy.service.auth.v3 wire compatibility", () => {
  it("serves envoy.service.auth.v3.Authorization/Check", () => {
    expect(Authorization.typeName).toBe("envoy.service.auth.v3.Authorization");
    expect(rpcSignatures(Authorization)).toEqual(["Check(CheckRequest) -> CheckResponse"]);
    expect(Authorization.method.check.input.typeName).toBe("envoy.service.auth.v3.CheckRequest");
  });

  it("decodes a hand-encoded HeaderValueOption with Envoy's field numbers", () => {
    // HeaderValueOption{header{key="x-user", value="alice"}, append=BoolValue{}, append_action=2,
    // keep_empty_value=true}
    // biome-ignore format: one wire field per line
    const wire = new Uint8Array([
      0x0a, 0x0f, // 1: header, 15 bytes
      0x0a, 0x06, ...new TextEncoder().encode("x-user"), //   HeaderValue 1: key
      0x12, 0x05, ...new TextEncoder().encode("alice"), //   HeaderValue 2: value
      0x12, 0x00, // 2: append, an empty BoolValue (present, false)
      0x18, 0x02, // 3: append_action = OVERWRITE_IF_EXISTS_OR_ADD
      0x20, 0x01, // 4: keep_empty_value = true
    ]);
    const option = fromBinary(HeaderValueOptionSchema, wire);
    expect(option.header).toMatchObject({ key: "x-user", value: "alice" });
    expect(option.append).toBe(false);
    expect(option.appendAction).toBe(HeaderValueOption_HeaderAppendAction.OVERWRITE_IF_EXISTS_OR_ADD);
    expect(option.keepEmptyValue).toBe(true);
    expect(toBinary(HeaderValueOptionSchema, option)).toEqual(wire);
    // Unset append stays distinguishable from false, as Envoy needs.
    expect(fromBinary(HeaderValueOptionSchema, wire.slice(0, 17)).append).toBeUndefined();
  });

  it("decodes a CheckRequest as Envoy encodes it", () => {
    const wire = bytes(
      lenField(1 /* attributes */, [
        ...lenField(1 /* source */, [
          ...lenField(1 /* address */, [
            ...lenField(1 /* socket_address */, [...stringField(2, "10.0.0.7"), ...varintField(3, 41234)]),
          ]),
          ...stringField(4 /* principal */, "spiffe://cluster.local/ns/default/sa/web"),
        ]),
        ...lenField(4 /* request */, [
          ...lenField(1 /* time */, [...varintField(1, 1767225600), ...varintField(2, 5)]),
          ...lenField(2 /* http */, [
            ...stringField(1, "req-1"),
            ...stringField(2, "GET"),
            ...lenField(3 /* headers entry */, [
              ...stringField(1, "authorization"),
              ...stringField(2, "Bearer abc"),
            ]),
            ...stringField(4, "/orders?id=1"),
            ...stringField(5, "api.internal"),
            ...stringField(6, "https"),
            ...varintField(9 /* size */, -1),
            ...stringField(10, "HTTP/2"),
            ...lenField(13 /* header_map */, [
              ...lenField(1, [...stringField(1, "x-a"), ...lenField(3 /* raw_value */, [0xff, 0x00])]),
            ]),
          ]),
        ]),
        ...lenField(10 /* context_extensions entry */, [
          ...stringField(1, "route"),
          ...stringField(2, "orders"),
        ]),
        ...lenField(11 /* metadata_context */, [
          ...lenField(1 /* filter_metadata entry */, [
            ...stringField(1, "envoy.filters.http.jwt_authn"),
            ...lenField(2, []),
          ]),
        ]),
        ...lenField(12 /* tls_session */, [...stringField(1, "api.internal")]),
      ]),
    );
    const { attributes } = fromBinary(CheckRequestSchema, wire);
    const address = attributes?.source?.address?.address;
    expect(address?.case).toBe("socketAddress");
    if (address?.case !== "socketAddress") return;
    expect(address.value).toMatchObject({
      address: "10.0.0.7",
      portSpecifier: { case: "portValue", value: 41234 },
    });
    expect(attributes?.source?.principal).toBe("spiffe://cluster.local/ns/default/sa/web");
    expect(attributes?.request?.time).toMatchObject({ seconds: 1767225600n, nanos: 5 });
    expect(attributes?.request?.http).toMatchObject({
      id: "req-1",
      method: "GET",
      headers: { authorization: "Bearer abc" },
      path: "/orders?id=1",
      host: "api.internal",
      scheme: "https",
      size: -1n,
      protocol: "HTTP/2",
    });
    expect(attributes?.request?.http?.headerMap?.headers[0]).toMatchObject({
      key: "x-a",
      rawValue: new Uint8Array([0xff, 0x00]),
    });
    expect(attributes?.contextExtensions).toEqual({ route: "orders" });
    expect(Object.keys(attributes?.metadataContext?.filterMetadata ?? {})).toEqual([
      "envoy.filters.http.jwt_authn",
    ]);
    expect(attributes?.tlsSession?.sni).toBe("api.internal");
  });

  it("round-trips a CheckRequest built with create/toBinary", () => {
    const request = create(CheckRequestSchema, {
      attributes: {
        request: {
          time: { seconds: 1767225600n },
          http: {
            method: "POST",
            path: "/v1/orders",
            headers: { authorization: "Bearer t", ":authority": "a" },
          },
        },
        contextExtensions: { policy: "orders-write" },
      },
    });
    const decoded = fromBinary(CheckRequestSchema, toBinary(CheckRequestSchema, request));
    expect(decoded).toEqual(request);
    expect(decoded.attributes?.request?.http?.headers[":authority"]).toBe("a");
  });

  it("encodes an allow answer with identity headers exactly as Envoy expects", () => {
    const allow = create(CheckResponseSchema, {
      status: { code: 0 },
      httpResponse: {
        case: "okResponse",
        value: {
          headers: [
            {
              header: { key: "x-gatehouse-subject", value: "alice" },
              appendAction: HeaderValueOption_HeaderAppendAction.OVERWRITE_IF_EXISTS_OR_ADD,
            },
          ],
          headersToRemove: ["authorization"],
        },
      },
    });
    const header = [...stringField(1, "x-gatehouse-subject"), ...stringField(2, "alice")];
    const expected = bytes(
      lenField(1 /* status */, []),
      lenField(3 /* ok_response */, [
        ...lenField(2 /* headers */, [...lenField(1, header), ...varintField(3, 2)]),
        ...stringField(5 /* headers_to_remove */, "authorization"),
      ]),
    );
    expect(toBinary(CheckResponseSchema, allow)).toEqual(expected);
  });

  it("decodes denied and error answers with Envoy's field numbers", () => {
    const denied = fromBinary(
      CheckResponseSchema,
      bytes(
        lenField(1 /* status */, [...varintField(1, 16), ...stringField(2, "token expired")]),
        lenField(2 /* denied_response */, [
          ...lenField(1 /* status */, [...varintField(1, 401)]),
          ...lenField(2 /* headers */, [
            ...lenField(1, [
              ...stringField(1, "www-authenticate"),
              ...stringField(2, 'Bearer error="invalid_token"'),
            ]),
          ]),
          ...stringField(3 /* body */, '{"error":"token_expired"}'),
        ]),
        lenField(4 /* dynamic_metadata */, [
          ...lenField(1 /* Struct.fields entry */, [
            ...stringField(1, "sub"),
            ...lenField(2, stringField(3, "alice")),
          ]),
        ]),
      ),
    );
    expect(denied.status).toMatchObject({ code: 16, message: "token expired" });
    expect(denied.httpResponse.case).toBe("deniedResponse");
    if (denied.httpResponse.case !== "deniedResponse") return;
    expect(denied.httpResponse.value.status?.code).toBe(StatusCode.Unauthorized);
    expect(denied.httpResponse.value.headers[0]?.header?.key).toBe("www-authenticate");
    expect(denied.httpResponse.value.body).toBe('{"error":"token_expired"}');
    expect(denied.dynamicMetadata).toEqual({ sub: "alice" });

    const error = fromBinary(
      CheckResponseSchema,
      bytes(lenField(5 /* error_response */, lenField(1, varintField(1, 503)))),
    );
    expect(error.httpResponse.case).toBe("errorResponse");
    if (error.httpResponse.case !== "errorResponse") return;
    expect(error.httpResponse.value.status?.code).toBe(StatusCode.ServiceUnavailable);
  });

  it("numbers HTTP status codes by the code itself", () => {
    expect([
      StatusCode.OK,
      StatusCode.Unauthorized,
      StatusCode.Forbidden,
      StatusCode.TooManyRequests,
    ]).toEqual([200, 401, 403, 429]);
    expect([StatusCode.InternalServerError, StatusCode.ServiceUnavailable, StatusCode.Empty]).toEqual([
      500, 503, 0,
    ]);
  });
});
