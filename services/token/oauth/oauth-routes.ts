import type http from "node:http";
import type { Logger } from "../../shared/logging/index.ts";
import type { Registry } from "../../shared/metrics/index.ts";
import { type HttpRoutes, sendJson } from "../../shared/rpc/http-server.ts";
import { createRpcMetrics } from "../../shared/rpc/rpc-metrics.ts";
import type { Tracing } from "../../shared/tracing/tracing.ts";
import { introspectionEndpoint } from "./introspection-endpoint.ts";
import type { OAuthDeps } from "./oauth-deps.ts";
import { oauthEndpoint } from "./oauth-endpoint.ts";
import { revocationEndpoint } from "./revocation-endpoint.ts";
import { authorizationServerMetadata, OAUTH_PATHS } from "./server-metadata.ts";
import { tokenEndpoint } from "./token-endpoint.ts";

export interface OAuthRoutesOptions {
  logger: Logger;
  /** Where the `gatehouse_rpc_*` metrics go (shared with the RPCs, `protocol="oauth2"`). */
  metrics: Registry;
  /** A span per request (see shared/tracing); none when omitted. */
  tracing?: Tracing | undefined;
}

/**
 * The OAuth 2.0 HTTP surface for the token service's HTTP listener: token, introspection and
 * revocation endpoints (form posts only; other methods get 405 from the HTTP server) and the RFC 8414
 * metadata that names them.
 *
 * @example
 * startRpcServers({ ..., extraRoutes: { ...oauthRoutes(deps, { logger, metrics }), ... } });
 */
export function oauthRoutes(deps: OAuthDeps, options: OAuthRoutesOptions): HttpRoutes {
  const endpoint = {
    logger: options.logger,
    metrics: createRpcMetrics(options.metrics),
    tracing: options.tracing,
  };
  const metadata = authorizationServerMetadata(deps.issuer);
  return {
    [`POST ${OAUTH_PATHS.token}`]: oauthEndpoint("Token", endpoint, tokenEndpoint(deps)),
    [`POST ${OAUTH_PATHS.introspection}`]: oauthEndpoint("Introspect", endpoint, introspectionEndpoint(deps)),
    [`POST ${OAUTH_PATHS.revocation}`]: oauthEndpoint("Revoke", endpoint, revocationEndpoint(deps)),
    [`GET ${OAUTH_PATHS.metadata}`]: (_req: http.IncomingMessage, res: http.ServerResponse) =>
      sendJson(res, 200, metadata),
  };
}
