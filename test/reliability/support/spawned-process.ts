import { type ChildProcess, spawn } from "node:child_process";
import { createWriteStream, type WriteStream } from "node:fs";
import { join } from "node:path";
import { logsDirectory } from "./run-directory.ts";

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface SpawnedProcess {
  readonly name: string;
  readonly pid: number;
  /** The file its stdout and stderr go to (the log check reads every such file). */
  readonly logFile: string;
  readonly running: boolean;
  /** Resolves when the process has exited. */
  readonly exited: Promise<Exit>;
  kill(signal: NodeJS.Signals): void;
  /** SIGTERM, then SIGKILL if it is still there after `graceMs`; resolves once it is gone. */
  stop(graceMs?: number): Promise<Exit>;
  /** The last lines it printed, for failure messages. */
  tail(lines?: number): string;
}

const alive = new Set<ChildProcess>();
let sequence = 0;

// Whatever happens to the test worker, no process it started may outlive it.
process.once("exit", () => {
  for (const child of alive) child.kill("SIGKILL");
});

/**
 * Starts a process with its output captured to `<run>/logs/<name>-<n>.log` (and the last lines kept
 * in memory). Every process started this way is SIGKILLed when the worker exits, should a test fail
 * before stopping it.
 */
export function spawnProcess(
  name: string,
  command: string,
  args: readonly string[],
  options: { env?: NodeJS.ProcessEnv; cwd?: string } = {},
): SpawnedProcess {
  const logFile = join(logsDirectory(), `${name}-${++sequence}.log`);
  const out: WriteStream = createWriteStream(logFile, { mode: 0o600 });
  const child = spawn(command, [...args], {
    env: options.env ?? process.env,
    cwd: options.cwd,
    stdio: ["ignore", "pipe", "pipe"],
  });
  if (child.pid === undefined) throw new Error(`could not start ${name} (${command})`);
  alive.add(child);
  const recent: string[] = [];
  const keep = (chunk: Buffer) => {
    out.write(chunk);
    for (const line of chunk.toString("utf8").split("\n")) if (line) recent.push(line);
    if (recent.length > 400) recent.splice(0, recent.length - 200);
  };
  child.stdout!.on("data", keep);
  child.stderr!.on("data", keep);
  let running = true;
  const exited = new Promise<Exit>((resolve) => {
    child.once("exit", (code, signal) => {
      running = false;
      alive.delete(child);
      // Let the pipes drain before the log file is closed.
      setImmediate(() => out.end(() => resolve({ code, signal })));
    });
  });
  return {
    name,
    pid: child.pid,
    logFile,
    exited,
    get running() {
      return running;
    },
    kill(signal) {
      if (running) child.kill(signal);
    },
    async stop(graceMs = 5000) {
      if (running) {
        child.kill("SIGTERM");
        const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
        const exit = await exited;
        clearTimeout(timer);
        return exit;
      }
      return exited;
    },
    tail(lines = 30) {
      return recent.slice(-lines).join("\n");
    },
  };
}
