import { GatehouseError } from "../../shared/errors/gatehouse-error.ts";
import { denialOf, grpcDenialHeaders, httpDenialHeaders } from "../control/denial.ts";
import { type Exchange, sendJson } from "../control/exchange.ts";
import type { Guard } from "../control/guard.ts";
import { identityHeaders } from "../control/identity-headers.ts";

export interface ForwardAuthOptions {
  guard: Guard;
  /** Add `x-gatehouse-jwt` with the verified token to the 200 answer. */
  forwardToken: boolean;
}

/** Methods a forward-auth subrequest may use (nginx `auth_request` keeps the original method). */
const METHODS = new Set(["GET", "HEAD", "POST"]);

/**
 * `/authz` for nginx `auth_request` and Traefik `forwardAuth`: the token from `Authorization`, the
 * original request from `X-Forwarded-Method` + `X-Forwarded-Uri` (Traefik) or `X-Original-Method` +
 * `X-Original-URI` (nginx; the subrequest's own method when no method header came). Answers 200 with
 * the identity headers — every one of them, empty when unknown, so a proxy copying them
 * (`authResponseHeaders`, `auth_request_set`) replaces whatever the caller sent — or 401/403 with
 * the RFC 6750 challenge and JSON body, or 400 when the original URI is missing or not in normal
 * form (the proxy forwards the path as it is, so it must be the path the rule was matched on).
 * gRPC requests (Traefik passes their `content-type`) also get `grpc-status` in the refusal.
 */
export function createForwardAuth(options: ForwardAuthOptions): (exchange: Exchange) => Promise<void> {
  const { guard, forwardToken } = options;
  return async (exchange) => {
    if (!METHODS.has(exchange.method)) {
      sendJson(exchange, 405, {
        error: "invalid_request",
        message: `${exchange.method} is not allowed on /authz`,
      });
      return;
    }
    const target = exchange.header("x-forwarded-uri") ?? exchange.header("x-original-uri");
    if (target === undefined) {
      const denial = denialOf(
        new GatehouseError(
          "invalid_request",
          "X-Forwarded-Uri (Traefik) or X-Original-URI (nginx) is required",
        ),
      );
      exchange.respond(denial.httpStatus, httpDenialHeaders(denial), denial.body);
      return;
    }
    const method =
      exchange.header("x-forwarded-method") ?? exchange.header("x-original-method") ?? exchange.method;
    const grpc = (exchange.header("content-type") ?? "").startsWith("application/grpc");
    const result = await guard.check(
      {
        method: method.toUpperCase(),
        target,
        authorization: exchange.header("authorization"),
        requireNormalPath: true,
      },
      "forward_auth",
    );
    if (result.allowed) {
      const headers: Record<string, string> = { "cache-control": "no-store" };
      if (result.identity !== null) {
        for (const [name, value] of identityHeaders(result.identity, forwardToken)) headers[name] = value;
      }
      exchange.respond(200, headers);
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
  };
}
