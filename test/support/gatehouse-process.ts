import { type ChildProcess, spawn } from "node:child_process";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { expect } from "vitest";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

export interface GatehouseProcess {
  child: ChildProcess;
  /** Its JSON log lines so far (a line that is not JSON: `{ msg: line }`). */
  lines: Record<string, unknown>[];
  /** SIGTERM, then the exit code. */
  stop(): Promise<number | null>;
}

/**
 * `node [nodeArgs] bin/gatehouse.mjs <command>` from this checkout, with `env` and PATH only (JSON
 * logs at info level unless `env` says otherwise); resolves once a log line's `msg` is
 * `readyMessage`, and fails at once, with its stderr, if the process exits first (killed if it is
 * still running when the wait gives up).
 */
export async function startGatehouse(
  command: string,
  options: { env: Record<string, string>; readyMessage: string; nodeArgs?: string[] },
): Promise<GatehouseProcess> {
  const child = spawn(
    process.execPath,
    [...(options.nodeArgs ?? []), join(ROOT, "bin/gatehouse.mjs"), command],
    {
      cwd: ROOT,
      env: {
        PATH: process.env.PATH,
        GATEHOUSE_LOG_LEVEL: "info",
        GATEHOUSE_LOG_PRETTY: "false",
        ...options.env,
      },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  const lines: Record<string, unknown>[] = [];
  let stderr = "";
  let buffer = "";
  child.stdout!.on("data", (chunk: Buffer) => {
    buffer += chunk.toString("utf8");
    let end = buffer.indexOf("\n");
    while (end !== -1) {
      const line = buffer.slice(0, end);
      buffer = buffer.slice(end + 1);
      try {
        lines.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        lines.push({ msg: line });
      }
      end = buffer.indexOf("\n");
    }
  });
  child.stderr!.on("data", (chunk: Buffer) => {
    stderr += chunk.toString("utf8");
  });
  try {
    await expect
      .poll(
        () => {
          if (child.exitCode !== null) throw new Error(`${command} exited ${child.exitCode}: ${stderr}`);
          return lines.some((l) => l.msg === options.readyMessage);
        },
        { timeout: 30_000 },
      )
      .toBeTruthy();
  } catch (err) {
    if (child.exitCode === null) child.kill("SIGKILL");
    throw err;
  }
  return {
    child,
    lines,
    stop: () =>
      new Promise((resolve) => {
        child.once("exit", (code) => resolve(code));
        child.kill("SIGTERM");
      }),
  };
}
