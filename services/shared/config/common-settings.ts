import { boolean, integer, oneOf, url } from "./setting-types.ts";
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
    description: "Human-readable logs; unset means pretty on a terminal, JSON otherwise",
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
    description: "Redis URL for the revocation stream (redis:// or rediss://); unset uses the in-process bus",
    optional: true,
    secret: true,
    schema: url(["redis", "rediss"]),
  }),
};
