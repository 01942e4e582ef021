import { type ChildProcess, spawn } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "./ports.ts";
import { TEST_DATABASE_URL } from "./services.ts";

export const PGBOUNCER_BINARY = "/usr/sbin/pgbouncer";

export interface RunningPgbouncer {
  /** postgres:// URL of the pooled database (no `?schema=`; add one for a Gatehouse process). */
  url: string;
  log(): string;
  stop(): Promise<void>;
}

/**
 * A private PgBouncer (Debian `pgbouncer`) in transaction mode in front of the test Postgres, with
 * `serverConnections` server connections, each starting with `search_path` set to `schema` unless
 * `searchPath: false` (Gatehouse's own statements name their schema and need none). Clients of
 * it see what a transaction pooler gives: consecutive transactions of one client connection may run on
 * different server connections. PgBouncer refuses to run as root; as root it is told to switch to
 * `nobody`.
 */
export async function startPgbouncer(
  schema: string,
  serverConnections: number,
  opts: { searchPath?: boolean } = {},
): Promise<RunningPgbouncer> {
  const upstream = new URL(TEST_DATABASE_URL);
  const dir = mkdtempSync(join(tmpdir(), "gatehouse-pgbouncer-"));
  const port = await freePort();
  const asRoot = process.getuid?.() === 0;
  if (asRoot) chmodSync(dir, 0o777);
  const user = decodeURIComponent(upstream.username || "postgres");
  writeFileSync(join(dir, "users.txt"), `"${user}" ""\n`, { mode: 0o644 });
  writeFileSync(
    join(dir, "pgbouncer.ini"),
    `[databases]
pooled = host=${upstream.hostname} port=${upstream.port || 5432} dbname=${upstream.pathname.slice(1)} user=${user} pool_size=${serverConnections}${opts.searchPath === false ? "" : ` connect_query='SET search_path TO "${schema}"'`}
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = ${port}
unix_socket_dir =
auth_type = trust
auth_file = ${join(dir, "users.txt")}
pool_mode = transaction
max_client_conn = 100
logfile = ${join(dir, "pgbouncer.log")}
`,
    { mode: 0o644 },
  );
  const args = [...(asRoot ? ["-u", "nobody"] : []), join(dir, "pgbouncer.ini")];
  const child: ChildProcess = spawn(PGBOUNCER_BINARY, args, { stdio: "ignore" });
  const log = () => {
    try {
      return readFileSync(join(dir, "pgbouncer.log"), "utf8");
    } catch {
      return "";
    }
  };
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const deadline = Date.now() + 5000;
  while (!log().includes("process up")) {
    if (child.exitCode !== null || Date.now() > deadline) {
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`pgbouncer did not start:\n${log()}`);
    }
    await new Promise((r) => setTimeout(r, 25));
  }
  return {
    url: `postgres://${user}@127.0.0.1:${port}/pooled`,
    log,
    async stop() {
      if (child.exitCode === null) child.kill("SIGTERM");
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
