/**
 * This checkout's token service against another checkout's, loaded at the same time, so both see the
 * same machine. On this shared 2-core VM one service measured alone moves by ±20 % from run to run
 * (Refresh 1,600-2,600/s for the same code, CPU per call with it), while two services loaded together
 * stay within 2 % of each other when they run the same code (an A/A run: `--base` this checkout).
 * That is what makes a 5 % change measurable; token-service.ts gives the absolute figures.
 *
 *   npx tsx bench/compare-revisions.ts --base DIR [--mode refresh] [--duration 8] [--rounds 3]
 *                                      [--concurrency 32] [--warmup 2] [--base-env K=V;K=V]
 *
 * DIR is another checkout with its dependencies and generated code, e.g.
 * `git worktree add ../base main && ln -s "$PWD/node_modules" ../base/node_modules &&
 * cp -r services/gen ../base/services/`. Each side's schema is migrated and given the bench client
 * by that checkout's own bench/lib/bench-client.ts, in a child process of its own (two Prisma schema
 * engines in one process crashed), and each side runs its own `bin/gatehouse.mjs serve`; the load
 * comes from this checkout's drivers, `--concurrency` callers per side, `--mode` refresh or issue.
 * Rows: this checkout's calls/s and service CPU per call, with the base's as the limit, summed over
 * `--rounds` windows of `--duration` s. `--duration` and `--concurrency` are also what `npm run bench`
 * passes every benchmark; this one is not part of it (it needs a second checkout).
 * `--base-env` sets environment variables of the base's service only, so one checkout can be compared
 * with itself run another way: `--base . --base-env LD_PRELOAD=` runs the base on glibc's malloc
 * instead of the image's jemalloc (bench/lib/image-allocator.ts).
 */
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { resolve } from "node:path";
import pg from "pg";
import { benchArgs } from "./lib/bench-args.ts";
import {
  capacitySettings,
  DATABASE_URL,
  ROOT,
  startTokenService,
  type TokenServiceProcess,
} from "./lib/bench-processes.ts";
import { report, row } from "./lib/bench-results.ts";
import { cpuBetween, cpuSnapshot, processTree } from "./lib/process-cpu.ts";
import { driveLoad } from "./lib/token-load.ts";

const args = benchArgs("npx tsx bench/compare-revisions.ts --base DIR [flags]", {
  base: "",
  mode: "refresh",
  duration: 8,
  rounds: 3,
  concurrency: 32,
  warmup: 2,
  "base-env": "",
});

/** `K=V;K=V` → { K: V }; an empty value is kept (it unsets a preload, say). */
function parseEnvList(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const pair of text.split(";").filter(Boolean)) {
    const at = pair.indexOf("=");
    if (at < 1) throw new Error(`--base-env: "${pair}" is not K=V`);
    env[pair.slice(0, at)] = pair.slice(at + 1);
  }
  return env;
}

interface Side {
  secret: string;
  server: TokenServiceProcess;
  calls: number;
  cpuUs: number;
  elapsedMs: number;
}

/** A migrated schema with the bench client, and `gatehouse serve` on it, all from checkout `dir`. */
async function startSide(dir: string, schemas: string[], env: Record<string, string>): Promise<Side> {
  const schema = `bench_cmp_${randomBytes(4).toString("hex")}`;
  schemas.push(schema); // dropped at the end even if this side never starts
  const setup = `const m = await import("./bench/lib/bench-client.ts");
    const r = await m.createBenchSchema(${JSON.stringify(DATABASE_URL)}, ${JSON.stringify(schema)});
    process.stdout.write(JSON.stringify(r)); process.exit(0);`;
  const made = spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", setup], {
    cwd: dir,
    encoding: "utf8",
    timeout: 120_000,
  });
  if (made.status !== 0) throw new Error(`setting up ${dir} failed: ${made.stderr}`);
  const { secret } = JSON.parse(made.stdout) as { secret: string };
  const server = await startTokenService(
    { ...capacitySettings(Math.min(args.concurrency, 32)), ...env },
    {
      schema,
      showLogs: true,
      root: dir,
    },
  );
  return { secret, server, calls: 0, cpuUs: 0, elapsedMs: 0 };
}

function parseMode(text: string): "refresh" | "issue" {
  if (text !== "refresh" && text !== "issue") throw new Error("--mode is refresh or issue");
  return text;
}

async function main(): Promise<void> {
  if (args.base === "") throw new Error("--base DIR is required: the checkout to compare with");
  const mode = parseMode(args.mode);
  const concurrency = Math.max(1, Math.floor(args.concurrency));
  const sides: Side[] = [];
  const schemas: string[] = [];
  try {
    // Ours first, then the base: the order of start-up does not matter, both are warmed up below.
    const baseEnv = parseEnvList(args["base-env"]);
    sides.push(await startSide(ROOT, schemas, {}));
    sides.push(await startSide(resolve(args.base), schemas, baseEnv));
    const task = (s: Side, durationMs: number) => ({
      port: s.server.grpcPort,
      clientId: "bench",
      secret: s.secret,
      mode,
      durationMs,
    });
    await Promise.all(sides.map((s) => driveLoad(task(s, args.warmup * 1000), concurrency, 1)));
    for (let round = 0; round < args.rounds; round++) {
      const before = sides.map((s) => cpuSnapshot(processTree(s.server.child.pid!)));
      const loads = await Promise.all(
        sides.map((s) => driveLoad(task(s, args.duration * 1000), concurrency, 1)),
      );
      for (const [i, s] of sides.entries()) {
        s.cpuUs += cpuBetween(before[i]!, cpuSnapshot(processTree(s.server.child.pid!)));
        s.calls += loads[i]!.calls;
        s.elapsedMs += loads[i]!.elapsedMs;
      }
      console.log(
        `round ${round + 1}: ours ${Math.round(loads[0]!.perSecond)}/s, base ${Math.round(loads[1]!.perSecond)}/s`,
      );
    }
    const [ours, base] = sides as [Side, Side];
    const perSecond = (s: Side) => s.calls / (s.elapsedMs / 1000);
    const cpuPerCall = (s: Side) => s.cpuUs / Math.max(1, s.calls);
    report(
      "compare-revisions",
      [
        row(`${mode}_per_s`, perSecond(ours), "calls/s", perSecond(base)),
        row(`${mode}_service_cpu_us`, cpuPerCall(ours), "µs/call", cpuPerCall(base)),
      ],
      {
        ours: ROOT,
        base: resolve(args.base),
        baseEnv,
        mode,
        rounds: args.rounds,
        durationS: args.duration,
        concurrencyPerSide: concurrency,
        how: "both services loaded at once, each by its own driver process; limit = the base checkout's figure",
      },
    );
  } finally {
    for (const s of sides) await s.server.stop();
    const c = new pg.Client({ connectionString: DATABASE_URL });
    await c.connect();
    for (const schema of schemas) await c.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await c.end();
  }
}

await main();
