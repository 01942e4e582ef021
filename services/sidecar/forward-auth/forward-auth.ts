import { GatehouseError } from "../../shared/errors/gatehouse-error.ts";
import type { Tracing } from "../../shared/tracing/tracing.ts";
import { denialOf, grpcDenialHeaders, httpDenialHeaders } from "../control/denial.ts";
import { type Exchange, sendJson } from "../control/exchange.ts";
import type { Guard } from "../control/guard.ts";
import { checkInSpan, endGuardSpan, guardSpan } from "../control/guard-span.ts";
import { identityHeaders } from "../control/identity-headers.ts";

export interface ForwardAuthOptions {
  guard: Guard;
  /** Add `x-gatehouse-jwt` with the verified token to the 200 answer. */
  forwardToken: boolean;
  /** Which header pair the front proxy puts the original method and URI in. */
  headers: ForwardAuthHeaders;
  /**
   * A span per check, continuing the caller's trace; an allowed answer then carries a `traceparent`
   * naming it, for the front proxy to pass to the app (docs/operations.md, "Tracing").
   */
  tracing?: Tracing | undefined;
}

type ForwardAuthHeaders = "x-forwarded" | "x-original";

/** Methods a forward-auth subrequest may use (nginx `auth_request` keeps the original method). */
const METHODS = new Set(["GET", "HEAD", "POST"]);

const PAIRS = {
  "x-forwarded": { method: "x-forwarded-method", uri: "x-forwarded-uri", names: "X-Forwarded-Uri" },
  "x-original": { method: "x-original-method", uri: "x-original-uri", names: "X-Original-URI" },
} as const;

/**
 * `/authz` for nginx `auth_request` and Traefik/Caddy `forwardAuth`: the token from `Authorization`,
 * the original request from the header pair the `headers` setting names — `X-Forwarded-Method` +
 * `X-Forwarded-Uri` (Traefik, Caddy) or `X-Original-Method` + `X-Original-URI` (nginx; the
 * subrequest's own method when no method header came). Only that pair is read: front proxies pass
 * the caller's own headers into the subrequest, so the other pair may be the caller's invention.
 * A request carrying the other pair with different values is refused 400
 * `conflicting_forward_headers` whatever the setting, so a front proxy left on the wrong setting
 * fails loudly instead of judging a path the caller chose. Answers 200 with the identity headers the
 * token gives (none on a public route without a token; the front proxy's copy step — Traefik's
 * `authResponseHeaders`, nginx `auth_request_set` + `proxy_set_header` — replaces or removes the
 * caller's own copies, see SECURITY.md) — or 401/403 with the RFC 6750 challenge
 * and JSON body, or 400 when the original URI is missing or not in normal form (the proxy forwards
 * the path as it is, so it must be the path the rule was matched on). gRPC requests (Traefik passes
 * their `content-type`) also get `grpc-status` in the refusal.
 */
export function createForwardAuth(options: ForwardAuthOptions): (exchange: Exchange) => Promise<void> {
  const { guard, forwardToken } = options;
  const read = PAIRS[options.headers];
  const other = PAIRS[options.headers === "x-forwarded" ? "x-original" : "x-forwarded"];
  return async (exchange) => {
    if (!METHODS.has(exchange.method)) {
      sendJson(exchange, 405, {
        error: "invalid_request",
        message: `${exchange.method} is not allowed on /authz`,
      });
      return;
    }
    const target = exchange.header(read.uri);
    if (target === undefined) {
      refuse(exchange, new GatehouseError("invalid_request", `${read.names} is required`));
      return;
    }
    const method = (exchange.header(read.method) ?? exchange.method).toUpperCase();
    const otherTarget = exchange.header(other.uri);
    const otherMethod = exchange.header(other.method);
    if (
      (otherTarget !== undefined && otherTarget !== target) ||
      (otherMethod !== undefined && otherMethod.toUpperCase() !== method)
    ) {
      refuse(
        exchange,
        new GatehouseError(
          "conflicting_forward_headers",
          `${PAIRS["x-forwarded"].names} and ${PAIRS["x-original"].names} (or their methods) disagree`,
        ),
      );
      return;
    }
    const grpc = (exchange.header("content-type") ?? "").startsWith("application/grpc");
    const request = {
      method,
      target,
      authorization: exchange.header("authorization"),
      requireNormalPath: true,
    };
    const span = guardSpan(options.tracing, "forward_auth", request, exchange.header);
    const result = await checkInSpan(guard, request, "forward_auth", span);
    if (result.allowed) {
      const headers: Record<string, string> = { "cache-control": "no-store" };
      if (result.identity !== null) {
        for (const [name, value] of identityHeaders(result.identity, forwardToken)) headers[name] = value;
      }
      const context = span?.headers();
      if (context !== undefined) Object.assign(headers, context);
      exchange.respond(200, headers);
      endGuardSpan(span, 200);
      return;
    }
    const { denial } = result;
    const headers = httpDenialHeaders(denial);
    if (grpc) {
      const { "grpc-status": status, "grpc-message": message } = grpcDenialHeaders(denial);
      headers["grpc-status"] = status!;
      headers["grpc-message"] = message!;
    }
    exchange.respond(denial.httpStatus, headers, denial.body);
    endGuardSpan(span, denial.httpStatus, denial.code);
  };
}

function refuse(exchange: Exchange, err: GatehouseError): void {
  const denial = denialOf(err);
  exchange.respond(denial.httpStatus, httpDenialHeaders(denial), denial.body);
}
