/**
 * The soak's preload: N live, refreshable sessions written with COPY, and the plaintext refresh
 * token of each, computed again from (seed, index, MAC key) by whoever refreshes them, so nothing
 * has to carry millions of tokens between processes.
 *
 * This is the one place that knows what a live session is in storage. Today: one `sessions` row per
 * session holding its v2 refresh state (generation 1, the SHA-256 of its live token, the kid of the
 * MAC key that token carries) and the kid of the service's active signing key, exactly what Issue
 * writes; no `refresh_tokens` row. The signing kid matters for speed: `signing_kid` is indexed, so a
 * Refresh that changes it cannot be a HOT update and writes every index of the row. Issue writes the
 * active kid and Refresh keeps it until the next key rotation; a preload with any other kid made
 * every first refresh of a soak session write four index entries that no real one writes.
 *
 * Each token is a v2 token (services/token/tokens/refresh-token-format.ts) of generation 1 under
 * the MAC key the service will use, its random part HMAC-SHA256 of the index under the seed. When
 * the refresh data model changes, change this module (rows and token format) and nothing else.
 *
 * COPY goes through `psql` (`COPY … FROM STDIN`): the `pg` driver has no COPY of its own and the
 * Postgres client tools are on every machine that runs Postgres. The copy session sets
 * `session_replication_role = replica` (superuser; so is the bench's `postgres` role) to skip the
 * per-row foreign-key check of sessions → clients, whose rows are consistent by construction.
 */
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { once } from "node:events";
import type { Writable } from "node:stream";
import pg from "pg";
import { createDatabase } from "../../services/shared/database/index.ts";
import { createLogger } from "../../services/shared/logging/index.ts";
import { createKeyRing } from "../../services/token/keys/key-ring.ts";
import { createMacKeys } from "../../services/token/keys/refresh-keys.ts";
import {
  deriveNextRefreshToken,
  hashRefreshToken,
  type RefreshMacKey,
} from "../../services/token/tokens/refresh-token-format.ts";

/** What derives every preloaded token; plain strings, so it can travel to the load-driver processes. */
export interface PreloadedTokens {
  /** A fresh random string per run. */
  seed: string;
  /** The service's active refresh MAC key: its kid, and the key as hex. */
  macKid: string;
  macKeyHex: string;
}

export function preloadedTokens(seed: string, macKey: RefreshMacKey): PreloadedTokens {
  return { seed, macKid: macKey.kid, macKeyHex: Buffer.from(macKey.key).toString("hex") };
}

/**
 * The keys a service started on `schema` with `masterKey` will use: the refresh MAC key it mints and
 * verifies with, and the kid of the signing key it signs access tokens with (which Issue writes into
 * each session row). The service's own key stores (keys/refresh-keys.ts, keys/key-ring.ts) seed both
 * if the schema has none, and the service loads those same active keys when it starts.
 */
export async function serviceKeys(
  url: string,
  schema: string,
  masterKey: Buffer,
): Promise<{ macKey: RefreshMacKey; signingKid: string }> {
  const db = await createDatabase({ kind: "postgres", url, schema });
  const log = createLogger({ level: "silent", component: "soak-preload", pretty: false });
  const macKeys = createMacKeys({ prisma: db.prisma, masterKey, log, pollMs: 3_600_000 });
  const signingKeys = createKeyRing({ prisma: db.prisma, masterKey, log, pollMs: 3_600_000 });
  try {
    await macKeys.start();
    await signingKeys.start();
    return { macKey: macKeys.active(), signingKid: signingKeys.active().kid };
  } finally {
    macKeys.stop();
    signingKeys.stop();
    await db.close();
  }
}

/**
 * The refresh token of preloaded session `i`: a v2 token of generation 1, as Issue would have minted,
 * its random part derived from (seed, i) by the format's own derivation.
 */
export function preloadedRefreshToken(tokens: PreloadedTokens, i: number): string {
  const macKey = { kid: tokens.macKid, key: Buffer.from(tokens.macKeyHex, "hex") };
  return deriveNextRefreshToken(
    `preload:${i}`,
    { sessionId: preloadedSessionId(tokens.seed, i), generation: 0 },
    Buffer.from(tokens.seed),
    macKey,
  );
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
  /** The service's active signing key (serviceKeys), as Issue writes it. */
  signingKid: string;
  count: number;
  tokens: PreloadedTokens;
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
 * Writes `count` live sessions with their refresh state, then VACUUM ANALYZE, so the table looks like
 * that of a service that has been up for a while (visibility map set, planner statistics current).
 */
export async function preloadLiveSessions(o: PreloadOptions): Promise<void> {
  const now = Date.now();
  const ts = (ms: number) => new Date(ms).toISOString();
  const created = ts(now - 3_600_000);
  const idleExpires = ts(now + 30 * 86_400_000);
  const expires = ts(now + 60 * 86_400_000);
  const sessions = `"${o.schema}".sessions`;
  const fixed = `${o.clientId}\t{orders:read}\t{orders}\t${o.signingKid}\t${created}\t${created}\t${idleExpires}\t${expires}\t1\t1`;
  await copyRows(
    o.url,
    sessions,
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
      "version",
      "refresh_generation",
      "refresh_hash",
      "refresh_mac_kid",
    ],
    o.count,
    (i) => {
      const hash = hashRefreshToken(preloadedRefreshToken(o.tokens, i)).toString("hex");
      return `${preloadedSessionId(o.tokens.seed, i)}\tsoak-${i}\t${fixed}\t\\\\x${hash}\t${o.tokens.macKid}`;
    },
  );
  const c = new pg.Client({ connectionString: o.url });
  await c.connect();
  try {
    await c.query(`VACUUM ANALYZE ${sessions}`);
  } finally {
    await c.end();
  }
}
