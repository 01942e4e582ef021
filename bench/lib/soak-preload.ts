/**
 * The soak's preload: N live, refreshable sessions written with COPY, and the plaintext refresh
 * token of each, computed again from (seed, index) by whoever refreshes them, so nothing has to
 * carry millions of tokens between processes.
 *
 * This is the one place that knows what a live session is in storage. Today: a `sessions` row plus
 * its unused `refresh_tokens` row (the token stored as its SHA-256, as Issue stores it). When the
 * refresh data model changes, change this module (rows and token format) and nothing else.
 *
 * COPY goes through `psql` (`COPY … FROM STDIN`): the `pg` driver has no COPY of its own and the
 * Postgres client tools are on every machine that runs Postgres. The copy session sets
 * `session_replication_role = replica` (superuser; so is the bench's `postgres` role) to skip the
 * per-row foreign-key check of refresh_tokens → sessions, whose rows are consistent by construction.
 */
import { spawn } from "node:child_process";
import { createHash, createHmac } from "node:crypto";
import { once } from "node:events";
import type { Writable } from "node:stream";
import pg from "pg";
import { hashRefreshToken, REFRESH_TOKEN_PREFIX } from "../../services/token/tokens/refresh-token-format.ts";

/** The refresh token of preloaded session `i`: shaped like any other (`gthr_` + 43 base64url). */
export function preloadedRefreshToken(seed: string, i: number): string {
  return REFRESH_TOKEN_PREFIX + createHmac("sha256", seed).update(`token:${i}`).digest("base64url");
}

function preloadedSessionId(seed: string, i: number): string {
  const b = createHash("sha256").update(`${seed}:session:${i}`).digest();
  b[6] = (b[6]! & 0x0f) | 0x40; // version 4
  b[8] = (b[8]! & 0x3f) | 0x80; // RFC 4122 variant
  const h = b.subarray(0, 16).toString("hex");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

export interface PreloadOptions {
  /** Postgres URL (the database) and the migrated schema to fill. */
  url: string;
  schema: string;
  /** The client the sessions belong to (it must exist and allow audience `orders`). */
  clientId: string;
  count: number;
  /** Tokens are derived from it: a fresh random string per run. */
  seed: string;
}

/** One `COPY table (columns) FROM STDIN` through psql, fed `count` lines of `line(i)` (text format). */
async function copyRows(
  url: string,
  table: string,
  columns: string[],
  count: number,
  line: (i: number) => string,
): Promise<void> {
  const psql = spawn(
    "psql",
    [
      url,
      "-X",
      "-q",
      "-v",
      "ON_ERROR_STOP=1",
      "-c",
      "SET session_replication_role = replica",
      "-c",
      `COPY ${table} (${columns.join(", ")}) FROM STDIN`,
    ],
    { stdio: ["pipe", "ignore", "inherit"] },
  );
  const exited = once(psql, "exit") as Promise<[number | null]>;
  const stdin = psql.stdin as Writable;
  for (let i = 0; i < count; ) {
    const chunk: string[] = [];
    for (const end = Math.min(count, i + 5000); i < end; i++) chunk.push(line(i));
    if (!stdin.write(`${chunk.join("\n")}\n`)) await Promise.race([once(stdin, "drain"), exited]);
    if (psql.exitCode !== null) break;
  }
  stdin.end();
  const [code] = await exited;
  if (code !== 0) throw new Error(`COPY into ${table} failed (psql exit ${code})`);
}

/**
 * Writes `count` live sessions with their refresh tokens, then VACUUM ANALYZE, so the tables look like
 * those of a service that has been up for a while (visibility map set, planner statistics current).
 */
export async function preloadLiveSessions(o: PreloadOptions): Promise<void> {
  const now = Date.now();
  const ts = (ms: number) => new Date(ms).toISOString();
  const created = ts(now - 3_600_000);
  const idleExpires = ts(now + 30 * 86_400_000);
  const expires = ts(now + 60 * 86_400_000);
  const q = (t: string) => `"${o.schema}".${t}`;
  await Promise.all([
    copyRows(
      o.url,
      q("sessions"),
      [
        "id",
        "subject",
        "client_id",
        "scopes",
        "audience",
        "signing_kid",
        "created_at",
        "last_used_at",
        "idle_expires_at",
        "expires_at",
      ],
      o.count,
      (i) =>
        `${preloadedSessionId(o.seed, i)}\tsoak-${i}\t${o.clientId}\t{orders:read}\t{orders}\tpreload\t${created}\t${created}\t${idleExpires}\t${expires}`,
    ),
    copyRows(
      o.url,
      q("refresh_tokens"),
      ["token_hash", "session_id", "created_at", "expires_at"],
      o.count,
      (i) =>
        `\\\\x${hashRefreshToken(preloadedRefreshToken(o.seed, i)).toString("hex")}\t${preloadedSessionId(o.seed, i)}\t${created}\t${idleExpires}`,
    ),
  ]);
  const c = new pg.Client({ connectionString: o.url });
  await c.connect();
  try {
    await c.query(`VACUUM ANALYZE ${q("sessions")}, ${q("refresh_tokens")}`);
  } finally {
    await c.end();
  }
}
