/**
 * CPU time of other processes, read from /proc: the token service's own process and every Postgres
 * process, so a benchmark can divide the CPU spent over its measured window by the calls it made.
 * Linux only (so is every benchmark here); resolution is one clock tick (10 ms at CLK_TCK = 100).
 */
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";

const TICKS_PER_SECOND = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
const MICROS_PER_TICK = 1_000_000 / TICKS_PER_SECOND;

/** utime + stime of one process (all its threads), µs; undefined once the process is gone. */
export function processCpuMicros(pid: number): number | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return undefined;
  }
  // The command name (field 2) is in parentheses and may itself hold spaces or ')': count fields
  // from the last ')'. utime and stime are fields 14 and 15, so 12th and 13th after the name.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) * MICROS_PER_TICK;
}

function allPids(): number[] {
  return readdirSync("/proc")
    .filter((d) => /^\d+$/.test(d))
    .map(Number);
}

function readOr(path: string, fallback: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return fallback;
  }
}

/** Every process whose command is `postgres`: the postmaster, its backends and background workers. */
export function postgresPids(): number[] {
  return allPids().filter((pid) => readOr(`/proc/${pid}/comm`, "").trim() === "postgres");
}

/** `pid` and every process below it (a service that forks workers is charged for them too). */
export function processTree(pid: number): number[] {
  const parentOf = new Map<number, number>();
  for (const p of allPids()) {
    const stat = readOr(`/proc/${p}/stat`, "");
    if (stat === "") continue;
    parentOf.set(p, Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]));
  }
  const tree = new Set([pid]);
  for (let grew = true; grew; ) {
    grew = false;
    for (const [p, parent] of parentOf) {
      if (!tree.has(p) && tree.has(parent)) {
        tree.add(p);
        grew = true;
      }
    }
  }
  return [...tree];
}

/** CPU µs per pid at one instant. */
export type CpuSnapshot = Map<number, number>;

export function cpuSnapshot(pids: number[]): CpuSnapshot {
  const snap: CpuSnapshot = new Map();
  for (const pid of pids) {
    const micros = processCpuMicros(pid);
    if (micros !== undefined) snap.set(pid, micros);
  }
  return snap;
}

/**
 * CPU µs spent between two snapshots by the processes alive at the second one. A process started in
 * between counts from zero; one that ended in between is lost (its CPU moved to its parent's
 * cumulative fields, which we do not read), so the figure is a lower bound when backends come and go.
 */
export function cpuBetween(before: CpuSnapshot, after: CpuSnapshot): number {
  let sum = 0;
  for (const [pid, micros] of after) sum += micros - (before.get(pid) ?? 0);
  return sum;
}
