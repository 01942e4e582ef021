import { z } from "zod";
import {
  databaseSettings,
  loggingSettings,
  redisSettings,
  setting,
  types,
} from "../shared/settings/index.ts";
import { tracingSettings } from "../shared/tracing/tracing-settings.ts";
import { trustedIssuersSetting } from "./assertions/trusted-issuers.ts";
import { limitOrOff, rateLimitSetting } from "./overload/rate-limit-setting.ts";

const DAY_MS = 86_400_000;

/**
 * A retention period: a duration of at least a day, or 0 / off to keep forever. The floor is there
 * because a bare number means seconds: "400" must not quietly empty the audit log.
 */
function retention() {
  return z
    .string()
    .trim()
    .transform((s) => (/^(off|never|forever)$/i.test(s) ? "0" : s))
    .pipe(types.duration())
    .refine((ms) => ms === 0 || ms >= DAY_MS, { error: "must be 0 (keep forever) or at least 1d" });
}

/** A time between passes of a background job (10s to 1d), or 0 / off for none. */
function intervalOrOff() {
  return z
    .string()
    .trim()
    .transform((s) => (/^off$/i.test(s) ? "0" : s))
    .pipe(types.duration({ maxMs: DAY_MS }))
    .refine((ms) => ms === 0 || ms >= 10_000, { error: "must be off or at least 10s" });
}

/** Everything `gatehouse serve` reads at start-up, parsed once into one options object. */
export const tokenServiceSettings = {
  ...loggingSettings,
  ...databaseSettings,
  ...redisSettings,
  grpcListen: setting({
    env: "GATEHOUSE_LISTEN",
    description: "Native gRPC listener (HTTP/2 cleartext)",
    default: ":7400",
    schema: types.listenAddress(),
  }),
  httpListen: setting({
    env: "GATEHOUSE_HTTP_LISTEN",
    description: "Connect/JSON, gRPC-Web, OAuth endpoints, JWKS and health listener",
    default: ":7480",
    schema: types.listenAddress(),
  }),
  maxConnections: setting({
    env: "GATEHOUSE_MAX_CONNECTIONS",
    description:
      "Most open connections each listener accepts (native gRPC, HTTP, admin); more are closed at once",
    default: "10000",
    schema: types.integer(1, 1_000_000),
  }),
  h2MaxConcurrentStreams: setting({
    env: "GATEHOUSE_H2_MAX_CONCURRENT_STREAMS",
    description:
      "Most calls one connection may have open at once on the native gRPC listener; with GATEHOUSE_MAX_CONNECTIONS it bounds the calls the service can be made to hold",
    default: "1000",
    schema: types.integer(1, 10_000),
  }),
  issuer: setting({
    env: "GATEHOUSE_ISSUER",
    description: "The `iss` of every token, exactly as sidecars expect it",
    schema: types.url(["https", "http"]),
  }),
  masterKey: setting({
    env: "GATEHOUSE_MASTER_KEY",
    description: "32 random bytes in base64: encrypts signing keys and refresh keys at rest",
    secret: true,
    schema: types.masterKey(),
  }),
  maxAccessTokenTtl: setting({
    env: "GATEHOUSE_MAX_ACCESS_TOKEN_TTL",
    description: "Longest access-token lifetime any client may have; bounds the revocation window",
    default: "60m",
    schema: types.duration({ minMs: 60_000, maxMs: 3_600_000 }),
  }),
  jwksMaxAge: setting({
    env: "GATEHOUSE_JWKS_MAX_AGE",
    description: "Cache-Control max-age of the JWKS; a staged key waits longer than this before signing",
    default: "5m",
    schema: types.duration({ minMs: 0, maxMs: 86_400_000 }),
  }),
  keyRotation: setting({
    env: "GATEHOUSE_KEY_ROTATION",
    description:
      "Scheduled signing-key rotation (on/off); off leaves staging and activation to operators, retiring keys still retire",
    default: "on",
    schema: types.boolean(),
  }),
  keyRotationInterval: setting({
    env: "GATEHOUSE_KEY_ROTATION_INTERVAL",
    description: "How long a signing key signs before scheduled rotation activates its successor",
    default: "30d",
    schema: types.duration({ minMs: 3_600_000, maxMs: 366 * 86_400_000 }),
  }),
  keyPublishDelay: setting({
    env: "GATEHOUSE_KEY_PUBLISH_DELAY",
    description:
      "How long scheduled rotation publishes a new key in the JWKS before it signs (never less than GATEHOUSE_JWKS_MAX_AGE)",
    default: "1h",
    schema: types.duration({ minMs: 0, maxMs: 30 * 86_400_000 }),
  }),
  credentialCacheTtl: setting({
    env: "GATEHOUSE_CREDENTIAL_CACHE_TTL",
    description:
      "How long a verified client secret, a refused one, or an unknown client id is remembered, so hashing stays off the hot path; client changes end it on every replica within a second",
    default: "30s",
    schema: types.duration({ maxMs: 600_000 }),
  }),
  revocationStream: setting({
    env: "GATEHOUSE_REVOCATION_STREAM",
    description: "Redis stream key the outbox relay publishes revocations to",
    default: "gatehouse:revocations",
    schema: types.text(),
  }),
  publishTimeout: setting({
    env: "GATEHOUSE_PUBLISH_TIMEOUT",
    description: "How long Revoke waits for its event to reach Redis before answering propagated=false",
    default: "500ms",
    schema: types.duration({ maxMs: 10_000 }),
  }),
  auditRetention: setting({
    env: "GATEHOUSE_AUDIT_RETENTION",
    description:
      "How long audit events are kept; one replica deletes older ones hourly, in batches. 0 or off keeps them forever",
    default: "400d",
    schema: retention(),
  }),
  shutdownGrace: setting({
    env: "GATEHOUSE_SHUTDOWN_GRACE",
    description: "On SIGTERM, how long in-flight calls may take to finish before connections are closed",
    default: "10s",
    schema: types.duration({ maxMs: 300_000 }),
  }),
  rateLimitIssue: setting({
    env: "GATEHOUSE_RATE_LIMIT_ISSUE",
    description:
      "Issue calls per second per client / largest burst (RATE/BURST, or off); over it: RESOURCE_EXHAUSTED with a retry delay",
    default: "1000/2000",
    schema: rateLimitSetting(),
  }),
  rateLimitRefresh: setting({
    env: "GATEHOUSE_RATE_LIMIT_REFRESH",
    description: "Refresh calls per second per client / largest burst (RATE/BURST, or off)",
    default: "2000/4000",
    schema: rateLimitSetting(),
  }),
  rateLimitIntrospect: setting({
    env: "GATEHOUSE_RATE_LIMIT_INTROSPECT",
    description: "Introspect calls per second per client / largest burst (RATE/BURST, or off)",
    default: "2000/4000",
    schema: rateLimitSetting(),
  }),
  rateLimitRevoke: setting({
    env: "GATEHOUSE_RATE_LIMIT_REVOKE",
    description:
      "Revoke calls per second per client / largest burst (RATE/BURST, or off); Revoke has no in-flight cap",
    default: "100/1000",
    schema: rateLimitSetting(),
  }),
  maxInFlightPerClient: setting({
    env: "GATEHOUSE_MAX_IN_FLIGHT_PER_CLIENT",
    description:
      "TokenService calls (all but Revoke and GetJwks) one client may have in flight at once (or off); more are refused at once, never queued",
    default: "256",
    schema: limitOrOff(),
  }),
  sessionRetention: setting({
    env: "GATEHOUSE_SESSION_RETENTION",
    description:
      "How long a session and its refresh-token rows are kept after it expired (absolute or idle) or was revoked, so a late reuse of its tokens is still recognised; then the janitor deletes them",
    default: "7d",
    schema: types.duration({ minMs: 3_600_000, maxMs: 366 * DAY_MS }),
  }),
  janitorInterval: setting({
    env: "GATEHOUSE_JANITOR_INTERVAL",
    description:
      "How often the session janitor runs (one replica at a time, in batches); off leaves it to `gatehouse janitor --once`",
    default: "10m",
    schema: intervalOrOff(),
  }),
  janitorBatchSize: setting({
    env: "GATEHOUSE_JANITOR_BATCH_SIZE",
    description:
      "Rows per table the janitor deletes in one transaction: larger clears a backlog in fewer round trips, smaller keeps each transaction's locks and WAL short",
    default: "1000",
    schema: types.integer(10, 100_000),
  }),
  rateLimitExchange: setting({
    env: "GATEHOUSE_RATE_LIMIT_EXCHANGE",
    description:
      "Exchange (RFC 8693 token exchange) calls per second per client / largest burst (RATE/BURST, or off)",
    default: "1000/2000",
    schema: rateLimitSetting(),
  }),
  revocation: setting({
    env: "GATEHOUSE_REVOCATION",
    description:
      "stream: refuse to start without a revocation stream to publish to (REDIS_URL); none: run without one, so sidecars following a stream never hear of revocations (`gatehouse dev` has its own in-process stream)",
    default: "stream",
    schema: types.oneOf(["stream", "none"]),
  }),
  trustedIssuers: setting({
    env: "GATEHOUSE_TRUSTED_ISSUERS",
    description:
      'Platform issuers whose tokens may authenticate clients registered with federated_issuer (e.g. a Kubernetes service-account issuer): a JSON list of {"issuer": URL, "jwks_uri"?: URL}; without jwks_uri the keys are found through <issuer>/.well-known/openid-configuration. https, or http on loopback only',
    default: "[]",
    schema: trustedIssuersSetting(),
  }),
  assertionMaxLifetime: setting({
    env: "GATEHOUSE_ASSERTION_MAX_LIFETIME",
    description:
      "Longest life (exp - iat) of a client assertion accepted; Kubernetes projected tokens live 1h unless expirationSeconds says otherwise",
    default: "1h",
    schema: types.duration({ minMs: 60_000, maxMs: DAY_MS }),
  }),
  assertionClockSkew: setting({
    env: "GATEHOUSE_ASSERTION_CLOCK_SKEW",
    description: "Clock difference tolerated on a client assertion's exp, nbf and iat",
    default: "60s",
    schema: types.duration({ maxMs: 300_000 }),
  }),
  assertionJwksCooldown: setting({
    env: "GATEHOUSE_ASSERTION_JWKS_COOLDOWN",
    description:
      "Least time between refetches of a trusted issuer's or a client's JWKS triggered by an assertion with an unknown kid",
    default: "30s",
    schema: types.duration({ maxMs: 3_600_000 }),
  }),
  clientsFile: setting({
    env: "GATEHOUSE_CLIENTS_FILE",
    description:
      "A clients file (YAML, see docs/operations.md) applied once at start as `gatehouse clients apply` would, without pruning; an invalid file or a failed apply stops the start",
    optional: true,
    schema: types.text(),
  }),
  ...tracingSettings("gatehouse-token"),
  adminListen: setting({
    env: "GATEHOUSE_ADMIN_LISTEN",
    description:
      "Admin plane listener: AdminService (native gRPC over h2c, Connect, gRPC-Web), /metrics and /healthz on one port, for operators and Prometheus only",
    default: ":7490",
    schema: types.listenAddress(),
  }),
  grpcReflection: setting({
    env: "GATEHOUSE_GRPC_REFLECTION",
    description:
      "gRPC server reflection (v1 and v1alpha) for TokenService and health on the native gRPC listener, so grpcurl and buf curl need no .proto files",
    default: "true",
    schema: types.boolean(),
  }),
};
