import { SettingsError } from "../settings/settings.ts";

/**
 * Known database failures at start-up, as the one line an operator needs: it names DATABASE_URL
 * (never its password) and the fix, instead of the driver's or Prisma's multi-line dump.
 *
 * A wrong database name or wrong credentials are configuration (SettingsError, exit 2): the setting
 * must change. A server that does not answer, or a schema behind this build's migrations, is a
 * runtime failure (plain Error, exit 1): the setting is right, the world must change.
 *
 * Returns undefined for anything else, which the caller rethrows as it is.
 */
export function databaseFailure(err: unknown, url: string): Error | undefined {
  const connecting = connectionFailure(err, url);
  if (connecting !== undefined) return connecting;
  for (const e of causes(err)) {
    // undefined_table, invalid_schema_name: the schema was never migrated.
    if (e.code === "42P01" || e.code === "3F000") return notMigrated(describeUrl(url).schema);
  }
  return undefined;
}

/**
 * The part of {@link databaseFailure} about getting connected at all (server, database,
 * credentials, privileges): what `gatehouse migrate` itself can meet.
 */
export function connectionFailure(err: unknown, url: string): Error | undefined {
  const where = describeUrl(url);
  for (const e of causes(err)) {
    const code = typeof e.code === "string" ? e.code : undefined;
    const message = typeof e.message === "string" ? e.message : "";
    switch (code) {
      case "ECONNREFUSED":
      case "ENOTFOUND":
      case "EAI_AGAIN":
      case "EHOSTUNREACH":
      case "ENETUNREACH":
      case "ETIMEDOUT":
      case "ECONNRESET":
        return new Error(
          `DATABASE_URL: cannot reach the database server at ${where.server} (${code}): start Postgres or fix the host and port`,
        );
      case "3D000": // invalid_catalog_name
        return new SettingsError(
          "DATABASE_URL",
          `database "${where.database}" does not exist on ${where.server}: create it or fix the database name`,
        );
      case "28P01": // invalid_password
      case "28000": // invalid_authorization_specification (unknown role, pg_hba refusal)
        return new SettingsError(
          "DATABASE_URL",
          `the server at ${where.server} refused user "${where.user}" (${withoutSecrets(message)}): fix the user or password`,
        );
      case "42501": // insufficient_privilege
        return new SettingsError(
          "DATABASE_URL",
          `user "${where.user}" lacks a privilege Gatehouse needs (${withoutSecrets(message)}): grant it or use the owner of the schema`,
        );
    }
    if (/unsupported startup parameter: options/.test(message)) {
      // Only the migrator sends connect-time options (its scripts rely on search_path); a transaction
      // pooler such as PgBouncer refuses them, and the schema-wide lock it holds needs one session.
      return new SettingsError(
        "DATABASE_URL",
        `${where.server} is a connection pooler (it refused the search_path start-up option): run \`gatehouse migrate\` with a direct Postgres URL (see docs/operations.md, Connection poolers)`,
      );
    }
    if (/^Connection terminated unexpectedly$/.test(message)) {
      return new Error(
        `DATABASE_URL: the server at ${where.server} closed the connection before answering: check that the host and port are a Postgres server's`,
      );
    }
    if (/timeout expired|Connection terminated due to connection timeout/i.test(message)) {
      return new Error(
        `DATABASE_URL: the database server at ${where.server} did not answer in time: check that it is up and reachable`,
      );
    }
  }
  return undefined;
}

/** The schema this build's migrations are not (all) applied to: exit 1, the fix is one command. */
export function notMigrated(schema: string, pending?: readonly string[]): Error {
  const what =
    pending === undefined
      ? "has no Gatehouse tables"
      : `is missing ${pending.length} migration${pending.length === 1 ? "" : "s"} (${pending[pending.length - 1]} the latest)`;
  return new Error(`DATABASE_URL: schema "${schema}" ${what}: run \`gatehouse migrate\` first`);
}

/** Server, database, user and schema named in a Postgres URL; never its password. */
export function describeUrl(url: string): { server: string; database: string; user: string; schema: string } {
  try {
    const u = new URL(url);
    return {
      server: `${u.hostname || "localhost"}:${u.port || "5432"}`,
      database:
        decodeURIComponent(u.pathname.replace(/^\//, "")) || decodeURIComponent(u.username) || "postgres",
      user: decodeURIComponent(u.username) || "(default)",
      schema: u.searchParams.get("schema") ?? "public",
    };
  } catch {
    return {
      server: "(see DATABASE_URL)",
      database: "(see DATABASE_URL)",
      user: "(default)",
      schema: "public",
    };
  }
}

interface ErrorLike {
  code?: unknown;
  message?: unknown;
  cause?: unknown;
  errors?: unknown;
}

/** The error, its `cause` chain and the members of an AggregateError (pg reports IPv4 + IPv6 tries so). */
function causes(err: unknown): ErrorLike[] {
  const out: ErrorLike[] = [];
  const queue: unknown[] = [err];
  while (queue.length > 0 && out.length < 20) {
    const e = queue.shift();
    if (e === null || typeof e !== "object") continue;
    const like = e as ErrorLike;
    out.push(like);
    if (like.cause !== undefined) queue.push(like.cause);
    if (Array.isArray(like.errors)) queue.push(...like.errors);
  }
  return out;
}

/** Postgres never echoes a password in these messages; this keeps it that way for any that might. */
function withoutSecrets(message: string): string {
  return message.replace(/password=\S+/gi, "password=…").split("\n")[0]!;
}
