import { loggingSettings, redisSettings, setting, types } from "../shared/settings/index.ts";
import { tracingSettings } from "../shared/tracing/tracing-settings.ts";
import { DEFAULT_MAX_PATH_LENGTH } from "./policy/canonical-path.ts";

/** Everything `gatehouse sidecar` reads at start-up, parsed once into one options object. */
export const sidecarSettings = {
  ...loggingSettings,
  ...redisSettings,
  tokenServiceUrl: setting({
    env: "GATEHOUSE_TOKEN_SERVICE_URL",
    description: "Token service HTTP base URL; the JWKS is read from /.well-known/jwks.json",
    default: "http://127.0.0.1:7480",
    schema: types.url(["http", "https"]),
  }),
  issuer: setting({
    env: "GATEHOUSE_ISSUER",
    description: "Expected `iss` of access tokens",
    schema: types.url(["https", "http"]),
  }),
  audiences: setting({
    env: "GATEHOUSE_AUDIENCES",
    description: "Comma-separated audiences accepted when a route names none",
    default: "",
    schema: types.list(),
  }),
  algorithms: setting({
    env: "GATEHOUSE_ALGORITHMS",
    description: "Comma-separated JWS algorithms accepted (EdDSA, ES256, RS256)",
    default: "EdDSA,ES256,RS256",
    schema: types.list(),
  }),
  clockSkew: setting({
    env: "GATEHOUSE_CLOCK_SKEW",
    description: "Tolerance for exp, nbf and iat",
    default: "30s",
    schema: types.duration({ maxMs: 300_000 }),
  }),
  upstream: setting({
    env: "GATEHOUSE_UPSTREAM",
    description: "The app the proxy guards (http:// for HTTP/1.1, h2c:// for HTTP/2 cleartext and gRPC)",
    default: "http://127.0.0.1:8080",
    schema: types.url(["http", "h2c"]),
  }),
  policyFile: setting({
    env: "GATEHOUSE_POLICY_FILE",
    description: "Route policy file (YAML or JSON); unset means every route needs a valid token",
    optional: true,
    schema: types.text(),
  }),
  proxyListen: setting({
    env: "GATEHOUSE_PROXY_LISTEN",
    description: "Reverse-proxy listener in front of the app",
    default: ":7401",
    schema: types.listenAddress(),
  }),
  controlListen: setting({
    env: "GATEHOUSE_CONTROL_LISTEN",
    description: "Envoy ext_authz (gRPC), /authz forward-auth, health and metrics listener",
    default: ":7402",
    schema: types.listenAddress(),
  }),
  jwksCooldown: setting({
    env: "GATEHOUSE_JWKS_COOLDOWN",
    description: "Least time between JWKS refetches triggered by an unknown kid",
    default: "30s",
    schema: types.duration({ maxMs: 3_600_000 }),
  }),
  jwksMaxStale: setting({
    env: "GATEHOUSE_JWKS_MAX_STALE",
    description: "How long the last good JWKS is used while the token service is unreachable",
    default: "24h",
    schema: types.duration(),
  }),
  revocationStream: setting({
    env: "GATEHOUSE_REVOCATION_STREAM",
    description: "Redis stream key of revocation events",
    default: "gatehouse:revocations",
    schema: types.text(),
  }),
  stalenessBound: setting({
    env: "GATEHOUSE_REVOCATION_STALENESS",
    description: "How long the revocation state may go unconfirmed before the fail mode applies",
    default: "30s",
    schema: types.duration({ minMs: 1000 }),
  }),
  failMode: setting({
    env: "GATEHOUSE_FAIL_MODE",
    description: "When revocation state is stale: closed (reject) or open (accept verified tokens)",
    default: "closed",
    schema: types.oneOf(["closed", "open"]),
  }),
  forwardToken: setting({
    env: "GATEHOUSE_FORWARD_TOKEN",
    description:
      "Also pass the verified access token to the app, in x-gatehouse-jwt (proxy, ext_authz, forward-auth)",
    default: "false",
    schema: types.boolean(),
  }),
  stripAuthorization: setting({
    env: "GATEHOUSE_STRIP_AUTHORIZATION",
    description: "Remove the Authorization header before the request reaches the app (proxy and ext_authz)",
    default: "false",
    schema: types.boolean(),
  }),
  upstreamConnectTimeout: setting({
    env: "GATEHOUSE_UPSTREAM_CONNECT_TIMEOUT",
    description: "How long the proxy waits to connect to the app before answering 502 / UNAVAILABLE",
    default: "2s",
    schema: types.duration({ minMs: 10, maxMs: 60_000 }),
  }),
  shutdownGrace: setting({
    env: "GATEHOUSE_SHUTDOWN_GRACE",
    description: "How long a stopping sidecar lets requests in flight finish before cutting them",
    default: "10s",
    schema: types.duration({ maxMs: 600_000 }),
  }),
  maxPathLength: setting({
    env: "GATEHOUSE_MAX_PATH_LENGTH",
    description: "Longest request path (bytes, query excluded) the sidecar accepts; longer ones get 414",
    default: String(DEFAULT_MAX_PATH_LENGTH),
    schema: types.integer(256, 65_536),
  }),
  allowEncodedSlashes: setting({
    env: "GATEHOUSE_ALLOW_ENCODED_SLASHES",
    description:
      "Accept %2F and %5C in paths (forwarded as they are, judged by the policy as /) instead of refusing them with 400",
    default: "false",
    schema: types.boolean(),
  }),
  forwardAuthHeaders: setting({
    env: "GATEHOUSE_FORWARD_AUTH_HEADERS",
    description:
      "Which headers /authz reads the original request from: x-forwarded (Traefik, Caddy: X-Forwarded-Method, X-Forwarded-Uri) or x-original (nginx: X-Original-Method, X-Original-URI)",
    default: "x-forwarded",
    schema: types.oneOf(["x-forwarded", "x-original"]),
  }),
  trustedProxies: setting({
    env: "GATEHOUSE_TRUSTED_PROXIES",
    description:
      "Comma-separated IPs/CIDRs of proxies in front of the sidecar: only from these is X-Forwarded-For appended to and the caller's X-Forwarded-Host/-Proto and Forwarded kept",
    default: "",
    schema: types.ipRanges(),
  }),
  revocation: setting({
    env: "GATEHOUSE_REVOCATION",
    description:
      "stream: refuse to start without a revocation stream (REDIS_URL); none: run without one, so revoked tokens pass until they expire",
    default: "stream",
    schema: types.oneOf(["stream", "none"]),
  }),
  maxConnections: setting({
    env: "GATEHOUSE_MAX_CONNECTIONS",
    description:
      "Most open connections the proxy accepts (HTTP/1.1 and HTTP/2 together); more are closed at once",
    default: "10000",
    schema: types.integer(1, 1_000_000),
  }),
  h2MaxConcurrentStreams: setting({
    env: "GATEHOUSE_H2_MAX_CONCURRENT_STREAMS",
    description: "Most streams one HTTP/2 caller may have open on the proxy at a time",
    default: "100",
    schema: types.integer(1, 10_000),
  }),
  idleTimeout: setting({
    env: "GATEHOUSE_IDLE_TIMEOUT",
    description:
      "How long the proxy keeps a connection with no request in flight (HTTP/1.1 keep-alive, HTTP/2 session without open streams)",
    default: "65s",
    schema: types.duration({ minMs: 10, maxMs: 3_600_000 }),
  }),
  headersTimeout: setting({
    env: "GATEHOUSE_HEADERS_TIMEOUT",
    description:
      "How long a caller has to send a request's headers (HTTP/1.1) or a new connection's first request (HTTP/1.1 and HTTP/2)",
    default: "20s",
    schema: types.duration({ minMs: 10, maxMs: 600_000 }),
  }),
  bodyIdleTimeout: setting({
    env: "GATEHOUSE_BODY_IDLE_TIMEOUT",
    description:
      "How long a request body may go without a byte arriving (while the app is ready for more) before the proxy cuts the request",
    default: "30s",
    schema: types.duration({ minMs: 10, maxMs: 3_600_000 }),
  }),
  upstreamMaxSockets: setting({
    env: "GATEHOUSE_UPSTREAM_MAX_SOCKETS",
    description:
      "Most connections the proxy opens to an HTTP/1.1 app at a time; further requests wait for one",
    default: "256",
    schema: types.integer(1, 100_000),
  }),
  ...tracingSettings("gatehouse-sidecar"),
};
