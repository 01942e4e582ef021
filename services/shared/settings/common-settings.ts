import { boolean, hostPorts, integer, oneOf, text, url } from "./setting-types.ts";
import { setting } from "./settings.ts";

/** Settings every process kind shares. */
export const loggingSettings = {
  logLevel: setting({
    env: "GATEHOUSE_LOG_LEVEL",
    description: "Minimum log level: trace, debug, info, warn, error, fatal or silent",
    default: "info",
    schema: oneOf(["trace", "debug", "info", "warn", "error", "fatal", "silent"]),
  }),
  logPretty: setting({
    env: "GATEHOUSE_LOG_PRETTY",
    description:
      "Human-readable logs (needs pino-pretty, a development dependency: not in the images); unset means pretty on a terminal when pino-pretty is installed, JSON otherwise",
    optional: true,
    schema: boolean(),
  }),
};

export const databaseSettings = {
  databaseUrl: setting({
    env: "DATABASE_URL",
    description: "Postgres connection URL (postgres://user@host:5432/db?schema=name)",
    secret: true,
    schema: url(["postgres", "postgresql"]),
  }),
  databasePoolSize: setting({
    env: "GATEHOUSE_DATABASE_POOL_SIZE",
    description: "Connections in the pool shared by Prisma and the hot-path SQL",
    default: "16",
    schema: integer(1, 500),
  }),
  databasePreparedStatements: setting({
    env: "GATEHOUSE_DATABASE_PREPARED_STATEMENTS",
    description:
      "Send the hot-path SQL as named prepared statements (parsed and planned once per connection). Set false behind a transaction pooler that cannot keep them, such as PgBouncer before 1.21 (see docs/operations.md, Connection poolers)",
    default: "true",
    schema: boolean(),
  }),
};

export const redisSettings = {
  redisUrl: setting({
    env: "REDIS_URL",
    description:
      "Redis URL for the revocation stream (redis:// or rediss://); unset uses the in-process bus. Not with REDIS_SENTINELS",
    optional: true,
    secret: true,
    schema: url(["redis", "rediss"]),
  }),
  redisSentinels: setting({
    env: "REDIS_SENTINELS",
    description:
      "Redis Sentinel addresses (host:port, comma-separated; port 26379 if left out): the revocation stream's primary is found, and followed across failovers, through them. Instead of REDIS_URL",
    optional: true,
    schema: hostPorts(26379),
  }),
  redisSentinelMaster: setting({
    env: "REDIS_SENTINEL_MASTER",
    description: "With REDIS_SENTINELS (and required with it): the master name the sentinels monitor",
    optional: true,
    schema: text(),
  }),
  redisSentinelUsername: setting({
    env: "REDIS_SENTINEL_USERNAME",
    description:
      "With REDIS_SENTINELS: ACL user to authenticate to the sentinels as (default: the default user)",
    optional: true,
    schema: text(),
  }),
  redisSentinelPassword: setting({
    env: "REDIS_SENTINEL_PASSWORD",
    description: "With REDIS_SENTINELS: password the sentinels require (their requirepass or the ACL user's)",
    optional: true,
    secret: true,
    schema: text(),
  }),
  redisSentinelTls: setting({
    env: "REDIS_SENTINEL_TLS",
    description:
      "With REDIS_SENTINELS: speak TLS to the sentinels (trusting the system CAs and NODE_EXTRA_CA_CERTS)",
    default: "false",
    schema: boolean(),
  }),
  redisUsername: setting({
    env: "REDIS_USERNAME",
    description:
      "With REDIS_SENTINELS: ACL user to authenticate to the primary as, what REDIS_URL's user part says (default: the default user)",
    optional: true,
    schema: text(),
  }),
  redisPassword: setting({
    env: "REDIS_PASSWORD",
    description:
      "With REDIS_SENTINELS: password of the primary and replicas, what REDIS_URL's password part says",
    optional: true,
    secret: true,
    schema: text(),
  }),
  redisTls: setting({
    env: "REDIS_TLS",
    description:
      "With REDIS_SENTINELS: speak TLS to the primary, what rediss:// says for REDIS_URL (trusting the system CAs and NODE_EXTRA_CA_CERTS)",
    default: "false",
    schema: boolean(),
  }),
};
