import { execFile, execFileSync } from "node:child_process";
import { chownSync, copyFileSync, existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { freePort } from "../../support/ports.ts";
import { logsDirectory } from "./run-directory.ts";

const run = promisify(execFile);

export interface PrivatePostgres {
  readonly port: number;
  /** `postgres://postgres@127.0.0.1:<port>/postgres` (trust auth). */
  readonly url: string;
  /** `pg_ctl restart -m fast`: what an operator's restart does (connections are cut, then it is back). */
  restart(): Promise<void>;
  /** `pg_ctl stop -m fast`: down until {@link start}. */
  stop(): Promise<void>;
  start(): Promise<void>;
  /** Stops the server and removes its data directory (its log is kept with the run's logs). Idempotent. */
  destroy(): Promise<void>;
}

/** The newest installed PostgreSQL server binaries (Debian layout), or those on PATH. */
function binDir(): string {
  const root = "/usr/lib/postgresql";
  if (existsSync(root)) {
    const versions = readdirSync(root)
      .filter((v) => existsSync(join(root, v, "bin", "initdb")))
      .sort((a, b) => Number(b) - Number(a));
    if (versions[0]) return join(root, versions[0], "bin");
  }
  return execFileSync("pg_config", ["--bindir"], { encoding: "utf8" }).trim();
}

/**
 * initdb and pg_ctl refuse to run as root; as root we run them as the `postgres` OS user through
 * runuser, in a directory that user owns.
 */
function asServerUser(): {
  wrap: (cmd: string, args: string[]) => [string, string[]];
  owner?: [number, number];
} {
  if (process.getuid?.() !== 0) return { wrap: (cmd, args) => [cmd, args] };
  const uid = Number(execFileSync("id", ["-u", "postgres"], { encoding: "utf8" }).trim());
  const gid = Number(execFileSync("id", ["-g", "postgres"], { encoding: "utf8" }).trim());
  return { wrap: (cmd, args) => ["runuser", ["-u", "postgres", "--", cmd, ...args]], owner: [uid, gid] };
}

/**
 * A throw-away PostgreSQL server of our own on a free loopback port, so a scenario can restart the
 * database under load without touching the shared one other tests are using. fsync is off: crash
 * safety of the data directory is not what is being tested, and it spares the shared disk.
 */
export async function startPrivatePostgres(): Promise<PrivatePostgres> {
  const bin = binDir();
  const user = asServerUser();
  const dir = mkdtempSync(join(tmpdir(), "gatehouse-pg-"));
  if (user.owner) chownSync(dir, ...user.owner);
  const data = join(dir, "data");
  const logFile = join(dir, "postgres.log");
  const port = await freePort();
  const pgctl = async (...args: string[]) => {
    const [cmd, argv] = user.wrap(join(bin, "pg_ctl"), args);
    await run(cmd, argv, { timeout: 60_000 });
  };
  const serverOptions = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=60`;
  const [initCmd, initArgs] = user.wrap(join(bin, "initdb"), [
    "-D",
    data,
    "-A",
    "trust",
    "-U",
    "postgres",
    "-E",
    "UTF8",
    "--no-sync",
  ]);
  await run(initCmd, initArgs, { timeout: 120_000 });
  const start = () => pgctl("-D", data, "-l", logFile, "-o", serverOptions, "-w", "-t", "60", "start");
  await start();
  // If the worker dies with the server still up, stop it: it is not our child, nothing else would.
  const onExit = () => {
    try {
      const [cmd, argv] = user.wrap(join(bin, "pg_ctl"), ["-D", data, "-m", "immediate", "-w", "stop"]);
      execFileSync(cmd, argv, { stdio: "ignore", timeout: 20_000 });
    } catch {
      // already stopped
    }
    rmSync(dir, { recursive: true, force: true });
  };
  process.once("exit", onExit);
  let destroyed: Promise<void> | undefined;
  return {
    port,
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    restart: () =>
      pgctl("-D", data, "-l", logFile, "-o", serverOptions, "-m", "fast", "-w", "-t", "60", "restart"),
    stop: () => pgctl("-D", data, "-m", "fast", "-w", "-t", "60", "stop"),
    start,
    destroy() {
      destroyed ??= (async () => {
        await pgctl("-D", data, "-m", "immediate", "-w", "stop").catch(() => {});
        if (existsSync(logFile)) copyFileSync(logFile, join(logsDirectory(), `private-postgres-${port}.log`));
        rmSync(dir, { recursive: true, force: true });
        process.off("exit", onExit);
      })();
      return destroyed;
    },
  };
}
