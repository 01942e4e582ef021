import { spawn } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { dropSchema, testSchemaName } from "../support/database.ts";
import { freePort } from "../support/ports.ts";
import { type TestRedis, useTestRedis } from "../support/redis.ts";
import { TEST_DATABASE_URL } from "../support/services.ts";

/**
 * docs/operations.md's "First deployment" walk-through, run as written: its ```sh blocks, in order,
 * in one bash, against the real Postgres (a fresh, unmigrated schema) and Redis (a key prefix of its
 * own). The only changes are the test's: free ports in place of the documented defaults (so
 * parallel tests never collide), `gatehouse` on PATH as `node bin/gatehouse.mjs`, DATABASE_URL and
 * REDIS_URL exported as the doc asks. Lines ending in `#=> text` must print `text` in their block.
 */
const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const DOC = readFileSync(join(ROOT, "docs/operations.md"), "utf8");
const RUN_TIMEOUT_MS = 300_000;
/** The documented default ports the walk-through uses, and the app's. */
const DEFAULT_PORTS = [7400, 7480, 7490, 7401, 7402, 8080] as const;

interface Block {
  script: string;
  expected: string[];
}

/** The ```sh blocks of the "First deployment" section, with the `#=>` expectations of each. */
function walkThroughBlocks(): Block[] {
  const start = DOC.indexOf("\n## First deployment\n");
  expect(start, "docs/operations.md has a First deployment section").toBeGreaterThan(0);
  const end = DOC.indexOf("\n## ", start + 1);
  const section = DOC.slice(start, end);
  return [...section.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => ({
    script: m[1]!,
    expected: [...m[1]!.matchAll(/#=> (.+)$/gm)].map((e) => e[1]!.trim()),
  }));
}

function groupAlive(pid: number): boolean {
  try {
    process.kill(-pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== "ESRCH";
  }
}

const cleanups: (() => Promise<void> | void)[] = [];
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

describe("docs/operations.md: First deployment", () => {
  it(
    "runs as written against real Postgres and Redis, and every process stops at the end",
    async () => {
      const blocks = walkThroughBlocks();
      expect(blocks.length).toBeGreaterThanOrEqual(10);

      const schema = testSchemaName("first_deployment");
      cleanups.push(() => dropSchema(schema));
      const databaseUrl = new URL(TEST_DATABASE_URL);
      databaseUrl.searchParams.set("schema", schema);
      const tredis: TestRedis = await useTestRedis("firstdeploy");
      cleanups.push(() => tredis.cleanup());

      const dir = mkdtempSync(join(tmpdir(), "gatehouse-first-deployment-"));
      cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
      const bin = join(dir, "bin");
      mkdirSync(bin);
      writeFileSync(
        join(bin, "gatehouse"),
        `#!/bin/sh\nexec "${process.execPath}" "${join(ROOT, "bin/gatehouse.mjs")}" "$@"\n`,
      );
      chmodSync(join(bin, "gatehouse"), 0o755);

      const ports = new Map<number, number>();
      for (const port of DEFAULT_PORTS) ports.set(port, await freePort());
      const local = (port: number) => `127.0.0.1:${ports.get(port)}`;
      // Every default port in the blocks is an address or the stand-in app's listen call.
      const withPorts = (text: string) =>
        text.replace(/\b(7400|7480|7490|7401|7402|8080)\b/g, (_, p: string) => String(ports.get(Number(p))));

      const env: NodeJS.ProcessEnv = {};
      for (const [k, v] of Object.entries(process.env)) {
        if (k === "DATABASE_URL" || k === "REDIS_URL" || k.startsWith("GATEHOUSE_") || k.startsWith("VITEST"))
          continue;
        env[k] = v;
      }
      Object.assign(env, {
        PATH: `${bin}:${process.env.PATH}`,
        // What the doc asks the reader to export before the first block.
        DATABASE_URL: databaseUrl.toString(),
        REDIS_URL: tredis.url,
        // The test's own: ports and a stream no other test reads, a short drain at the end.
        GATEHOUSE_LISTEN: local(7400),
        GATEHOUSE_HTTP_LISTEN: local(7480),
        GATEHOUSE_ADMIN_LISTEN: local(7490),
        GATEHOUSE_PROXY_LISTEN: local(7401),
        GATEHOUSE_CONTROL_LISTEN: local(7402),
        GATEHOUSE_REVOCATION_STREAM: `${tredis.prefix}revocations`,
        GATEHOUSE_SHUTDOWN_GRACE: "1s",
      });

      const marker = "@@first-deployment-block@@";
      const script = blocks.map((b) => `echo '${marker}'\n${withPorts(b.script)}`).join("\n");
      const child = spawn("bash", ["-e", "-o", "pipefail", "-c", script], {
        cwd: dir,
        env,
        detached: true,
        stdio: ["ignore", "pipe", "pipe"],
      });
      cleanups.push(() => {
        if (child.pid !== undefined && groupAlive(child.pid)) process.kill(-child.pid, "SIGKILL");
      });
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (d) => {
        stdout += d;
      });
      child.stderr.on("data", (d) => {
        stderr += d;
      });
      const code = await new Promise<number | null>((resolve) => {
        const timer = setTimeout(() => process.kill(-child.pid!, "SIGKILL"), RUN_TIMEOUT_MS);
        child.once("exit", (c) => {
          clearTimeout(timer);
          resolve(c);
        });
      });
      const logs = () =>
        ["serve.log", "sidecar.log"]
          .map((f) => {
            try {
              return `--- ${f}\n${readFileSync(join(dir, f), "utf8")}`;
            } catch {
              return `--- ${f}: none`;
            }
          })
          .join("\n");
      const context = `stdout:\n${stdout}\nstderr:\n${stderr}\n${logs()}`;
      expect(code, context).toBe(0);

      const outputs = stdout.split(`${marker}\n`).slice(1);
      expect(outputs, context).toHaveLength(blocks.length);
      blocks.forEach((block, i) => {
        let from = 0;
        for (const text of block.expected) {
          const at = outputs[i]!.indexOf(text, from);
          expect(
            at,
            `block ${i + 1} prints "${text}":\n${block.script}\n--- printed:\n${outputs[i]}`,
          ).not.toBe(-1);
          from = at + text.length;
        }
      });

      // The last block stopped everything it started: nothing is left in the group.
      const deadline = Date.now() + 10_000;
      while (groupAlive(child.pid!) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      expect(groupAlive(child.pid!), "no process of the walk-through survives it").toBe(false);
      // No secret was printed, and none is left in a file the walk-through wrote.
      expect(stdout).not.toMatch(/gths_/);
      for (const f of readdirSync(dir)) {
        if (f !== "bin") expect(readFileSync(join(dir, f), "utf8"), f).not.toMatch(/gths_/);
      }
    },
    RUN_TIMEOUT_MS + 30_000,
  );
});
