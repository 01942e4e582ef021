import { createLogger } from "../shared/logging/index.ts";
import { databaseSettings, loadSettings } from "../shared/settings/index.ts";
import { createSessionJanitor } from "../token/janitor/session-janitor.ts";
import { poolExecutor } from "../token/store/sql-executor.ts";
import { poolTransactions } from "../token/store/sql-transaction.ts";
import { tokenServiceSettings } from "../token/token-service-settings.ts";
import { outputFor, printJson } from "./cli-output.ts";
import { type Command, EXIT_OK, parseFlags, rawFlags, UsageError } from "./command.ts";

const usage = `Usage: gatehouse janitor --once [--database-url URL] [--session-retention D] [--janitor-batch-size N] [--json]

Runs one pass of the session janitor now, straight on the database: deletes the sessions that
expired (absolute or idle) or were revoked longer than the retention ago, with their refresh-token
rows, in batches, and prints what it deleted. The token service runs the same pass every
GATEHOUSE_JANITOR_INTERVAL; replicas and this command take turns on a transaction-scoped lock, so it
is safe beside them (it deletes nothing while another one is at work, and says so).

  --once                   run one pass and exit (required: the schedule belongs to the token service)
  --database-url URL       the Postgres to clean (default DATABASE_URL; ?schema=NAME selects a schema)
  --session-retention D    keep sessions this long past expiry or revocation (default
                           GATEHOUSE_SESSION_RETENTION, 7d)
  --janitor-batch-size N   rows per table per transaction (default GATEHOUSE_JANITOR_BATCH_SIZE, 1000)
  --json                   print the pass as JSON
  --help                   this text

Exit codes: 0 done (or another replica was at work), 1 database error, 2 usage or configuration.`;

const janitorSettings = {
  databaseUrl: databaseSettings.databaseUrl,
  databasePreparedStatements: databaseSettings.databasePreparedStatements,
  sessionRetention: tokenServiceSettings.sessionRetention,
  janitorBatchSize: tokenServiceSettings.janitorBatchSize,
};

export const janitorCommand: Command = {
  name: "janitor",
  summary: "Delete sessions past their retention now (one pass; the token service runs it on a schedule)",
  usage,
  async run(argv) {
    const { values, positionals } = parseFlags(argv, {
      once: { type: "boolean" },
      json: { type: "boolean" },
      "database-url": { type: "string" },
      "session-retention": { type: "string" },
      "janitor-batch-size": { type: "string" },
    });
    if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`);
    if (values.once !== true) {
      throw new UsageError(
        "--once is required: the token service runs the janitor every GATEHOUSE_JANITOR_INTERVAL",
      );
    }
    const settings = loadSettings(janitorSettings, { flags: rawFlags(argv) });
    // Loaded on demand: the database layer is most of the CLI's start-up time.
    const { createDatabase } = await import("../shared/database/index.ts");
    const db = await createDatabase(
      { kind: "postgres", url: settings.databaseUrl },
      {
        poolSize: 2,
        preparedStatements: settings.databasePreparedStatements,
      },
    );
    try {
      const janitor = createSessionJanitor({
        db: { ...poolExecutor(db.pool!), ...poolTransactions(db.pool!) },
        retentionMs: settings.sessionRetention,
        batchSize: settings.janitorBatchSize,
        intervalMs: 0,
        now: Date.now,
        log: createLogger({ level: "silent", component: "janitor", pretty: false }),
      });
      const pass = await janitor.runOnce();
      const output = outputFor(values.json);
      if (output.json) {
        printJson(output, { ...pass, cutoff: pass.cutoff.toISOString() });
      } else if (!pass.locked) {
        output.out("another replica is running the janitor: nothing deleted by this pass");
      } else {
        output.out(
          `deleted ${pass.deleted.sessions} session(s) and ${pass.deleted.refreshTokens} refresh-token row(s) ` +
            `that expired or were revoked before ${pass.cutoff.toISOString()}, in ${pass.batches} batch(es)` +
            (pass.drained ? "" : "; more remain (another replica took over)"),
        );
      }
      return EXIT_OK;
    } finally {
      await db.close();
    }
  },
};
