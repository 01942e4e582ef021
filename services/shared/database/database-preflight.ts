import { databaseFailure, describeUrl, notMigrated } from "./database-failure.ts";
import { migrationStatus } from "./migrate.ts";

/** Long enough for a server across a region, short enough that a dropped SYN is not a two-minute hang. */
const CONNECT_TIMEOUT_MS = 10_000;

/**
 * Checks the Postgres at `target` (URL, and schema unless the URL's `?schema=` names it) before a command uses it: the server answers, the database and
 * credentials are right, and every migration of this build is applied. One connection of its own,
 * always closed, so a failure leaves nothing open. Throws the one-line errors of database-failure.ts;
 * the caller (a CLI command) prints the line and exits 2 or 1.
 *
 * A token service whose schema is behind exits rather than waiting: the migration Job (or a human
 * running `gatehouse migrate`) is what fixes it, and the orchestrator restarts the process after.
 */
export async function checkDatabase(
  target: { url: string; schema?: string },
  opts: { migrationsDir?: string } = {},
): Promise<void> {
  const { url } = target;
  let status: Awaited<ReturnType<typeof migrationStatus>>;
  try {
    status = await migrationStatus(
      { kind: "postgres", ...target },
      { ...opts, connectTimeoutMs: CONNECT_TIMEOUT_MS },
    );
  } catch (err) {
    throw databaseFailure(err, url) ?? err;
  }
  const schema = target.schema ?? describeUrl(url).schema;
  if (status.failed.length > 0) {
    throw new Error(
      `DATABASE_URL: migration ${status.failed[0]} in schema "${schema}" failed part-way and needs a human: see \`gatehouse migrate --status\``,
    );
  }
  if (status.pending.length > 0) {
    throw notMigrated(schema, status.applied.length === 0 ? undefined : status.pending);
  }
}
