import { create, toBinary } from "@bufbuild/protobuf";
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import {
  type HeaderValueOption,
  HeaderValueOption_HeaderAppendAction,
  HeaderValueOptionSchema,
} from "../../gen/proto/envoy/config/core/v3/base_pb.ts";
import {
  Authorization,
  CheckResponseSchema,
} from "../../gen/proto/envoy/service/auth/v3/external_auth_pb.ts";
import type { StatusCode } from "../../gen/proto/envoy/type/v3/http_status_pb.ts";
import { GatehouseError } from "../../shared/errors/gatehouse-error.ts";
import type { Tracing } from "../../shared/tracing/tracing.ts";
import { type Denial, httpDenialHeaders } from "../control/denial.ts";
import type { Guard } from "../control/guard.ts";
import { checkInSpan, endGuardSpan, guardSpan } from "../control/guard-span.ts";
import { identityHeaders, isGatehouseHeader } from "../control/identity-headers.ts";
import { type CheckedHttpRequest, readCheckRequest } from "./check-request.ts";

/** `/envoy.service.auth.v3.Authorization/Check`: the HTTP/2 path Envoy and Istio call. */
export const CHECK_PATH = `/${Authorization.typeName}/${Authorization.method.check.name}`;

export interface CheckHandlerOptions {
  guard: Guard;
  /** Add `x-gatehouse-jwt` with the verified token. */
  forwardToken: boolean;
  /** Have Envoy remove `authorization` before the request goes upstream. */
  stripAuthorization: boolean;
  /**
   * A span per Check, continuing the trace context of the request being checked; an allowed
   * answer then sets `traceparent` (and `tracestate`) upstream, naming that span.
   */
  tracing?: Tracing | undefined;
}

const OVERWRITE = HeaderValueOption_HeaderAppendAction.OVERWRITE_IF_EXISTS_OR_ADD;

/**
 * Envoy's ext_authz `Check`, as bytes in and bytes out (see shared/rpc/grpc-wire.ts): reads method, path
 * (whose query is ignored for matching) and headers from `attributes.request.http`, runs the guard,
 * and answers either `OkHttpResponse` — identity headers set with OVERWRITE_IF_EXISTS_OR_ADD, and in
 * `headers_to_remove` every other `x-gatehouse-*` header the caller sent (plus `authorization` when
 * configured) — or `DeniedHttpResponse` with 401/403 (400 for an ambiguous path or one that is not
 * canonical, 414 for an over-long one), the `WWW-Authenticate` challenge and the JSON body;
 * `status.code` is 0, 16, 7 or 3. Envoy cannot rewrite the path on our say-so, so a path that is not
 * already canonical is refused rather than judged as something the app may not see.
 */
export function createCheckHandler(
  options: CheckHandlerOptions,
): (request: Uint8Array) => Promise<Uint8Array> {
  const { guard, forwardToken, stripAuthorization } = options;
  const denied = new WeakMap<Denial, Uint8Array>();

  return async (bytes) => {
    let http: CheckedHttpRequest | undefined;
    try {
      http = readCheckRequest(bytes);
    } catch (cause) {
      throw new GatehouseError("invalid_request", "the CheckRequest could not be decoded", { cause });
    }
    if (http === undefined) {
      throw new GatehouseError("invalid_request", "CheckRequest has no attributes.request.http");
    }
    const { headers } = http;
    const request = {
      method: http.method || headers[":method"] || "GET",
      target: http.path || headers[":path"] || "/",
      authorization: headers.authorization,
      requireNormalPath: true,
    };
    const span = guardSpan(options.tracing, "ext_authz", request, (name) => headers[name]);
    const result = await checkInSpan(guard, request, "ext_authz", span);
    if (!result.allowed) {
      endGuardSpan(span, result.denial.httpStatus, result.denial.code);
      let answer = denied.get(result.denial);
      if (answer === undefined) {
        answer = deniedResponse(result.denial);
        denied.set(result.denial, answer);
      }
      return answer;
    }
    // Envoy drops a header set to "" (keep_empty_value is false), which would leave a caller's copy
    // in place: an empty identity header (no scopes) is removed instead.
    const set =
      result.identity === null
        ? []
        : identityHeaders(result.identity, forwardToken).filter(([, value]) => value !== "");
    const remove: string[] = [];
    for (const name in headers) {
      if (isGatehouseHeader(name) && !set.some(([n]) => n === name)) remove.push(name);
    }
    if (stripAuthorization && headers.authorization !== undefined) remove.push("authorization");
    const context = span?.headers();
    if (context !== undefined) {
      set.push(["traceparent", context.traceparent]);
      if (context.tracestate !== undefined) set.push(["tracestate", context.tracestate]);
      else if (headers.tracestate !== undefined) remove.push("tracestate");
    }
    endGuardSpan(span, 200);
    return okResponse(set, remove);
  };
}

/**
 * `CheckResponse{status: {}, ok_response: {headers, headers_to_remove}}`, written field by field:
 * a Check that allows is the common case, and this is a few appends where building the generated
 * message objects first cost as much again. (tests compare it with the generated decoder)
 */
export function okResponse(
  set: readonly (readonly [string, string])[],
  remove: readonly string[],
): Uint8Array {
  const w = new BinaryWriter();
  w.tag(1, WireType.LengthDelimited).fork().join(); // status: code 0
  w.tag(3, WireType.LengthDelimited).fork(); // ok_response
  for (const [key, value] of set) {
    w.tag(2, WireType.LengthDelimited).fork(); // headers: HeaderValueOption
    w.tag(1, WireType.LengthDelimited).fork().tag(1, WireType.LengthDelimited).string(key);
    if (value !== "") w.tag(2, WireType.LengthDelimited).string(value);
    w.join(); // header: HeaderValue{key, value}
    w.tag(3, WireType.Varint).int32(OVERWRITE); // append_action
    w.join();
  }
  for (const name of remove) w.tag(5, WireType.LengthDelimited).string(name); // headers_to_remove
  w.join();
  return w.finish();
}

function deniedResponse(denial: Denial): Uint8Array {
  const headers = Object.entries(httpDenialHeaders(denial)).map(([key, value]) => option(key, value));
  return toBinary(
    CheckResponseSchema,
    create(CheckResponseSchema, {
      status: { code: denial.grpcStatus, message: denial.message },
      httpResponse: {
        case: "deniedResponse",
        value: { status: { code: denial.httpStatus as StatusCode }, headers, body: denial.body },
      },
    }),
  );
}

function option(key: string, value: string): HeaderValueOption {
  return create(HeaderValueOptionSchema, { header: { key, value }, appendAction: OVERWRITE });
}
