import pg from "pg";
import { poolConfig, schemaOf } from "../../../services/shared/database/postgres.ts";
import { hashRefreshToken, parseRefreshToken } from "../../../services/token/tokens/refresh-token-format.ts";

/** What the clients of one session were handed: every refresh token, and the newest one. */
export interface SessionLedger {
  received: Set<string>;
  /** The token the client holds now (it was never superseded on the client's side). */
  current: string;
}

/**
 * One refresh token the database accounts for. A session row holds its family's generation and the
 * hashes of the live and the previous token; earlier generations are accounted for by number only
 * (`token_hash` null). Legacy (v1) tokens are rows of their own.
 */
export interface StoredToken {
  session_id: string;
  token_hash: Buffer | null;
  /** The v2 generation; null for a legacy row. */
  generation: number | null;
  live: boolean;
}

export interface LedgerProblems {
  /** Sessions with more than one unused refresh token: a fork. */
  forks: string[];
  /** Sessions with no unused refresh token although nothing revoked them. */
  noLiveToken: string[];
  /** Refresh tokens a client was handed that the database has never stored. */
  unknownTokens: number;
  /** Sessions whose client-held token is not the one the database has live. */
  currentNotLive: string[];
  /** Sessions revoked (e.g. by a mistaken reuse detection): their users were logged out. */
  revoked: string[];
}

/**
 * Compares what clients were handed with what Postgres stores. Pure: the rows come from
 * {@link readLedgerRows}.
 */
export function ledgerProblems(
  sessions: ReadonlyMap<string, SessionLedger>,
  tokens: readonly StoredToken[],
  revokedSessions: readonly string[],
): LedgerProblems {
  const known = new Set(tokens.flatMap((t) => (t.token_hash ? [t.token_hash.toString("hex")] : [])));
  // Generations whose hash is no longer kept: a token of one is known by its session and generation.
  const byNumber = new Set(
    tokens.filter((t) => t.token_hash === null).map((t) => `${t.session_id}/${t.generation}`),
  );
  const isKnown = (token: string) => {
    if (known.has(hashRefreshToken(token).toString("hex"))) return true;
    const parsed = parseRefreshToken(token);
    return (
      "version" in parsed && parsed.version === 2 && byNumber.has(`${parsed.sessionId}/${parsed.generation}`)
    );
  };
  const live = new Map<string, string[]>();
  for (const t of tokens) {
    if (!t.live || t.token_hash === null) continue;
    const list = live.get(t.session_id) ?? [];
    list.push(t.token_hash.toString("hex"));
    live.set(t.session_id, list);
  }
  const revoked = new Set(revokedSessions);
  const problems: LedgerProblems = {
    forks: [],
    noLiveToken: [],
    unknownTokens: 0,
    currentNotLive: [],
    revoked: [...revoked],
  };
  for (const [sessionId, ledger] of sessions) {
    const liveHashes = live.get(sessionId) ?? [];
    if (liveHashes.length > 1) problems.forks.push(sessionId);
    if (liveHashes.length === 0 && !revoked.has(sessionId)) problems.noLiveToken.push(sessionId);
    for (const token of ledger.received) {
      if (!isKnown(token)) problems.unknownTokens++;
    }
    if (!revoked.has(sessionId) && !liveHashes.includes(hashRefreshToken(ledger.current).toString("hex"))) {
      problems.currentNotLive.push(sessionId);
    }
  }
  return problems;
}

export function describeProblems(p: LedgerProblems): string[] {
  const out: string[] = [];
  if (p.forks.length)
    out.push(
      `${p.forks.length} sessions have two or more live refresh tokens (fork): ${p.forks.slice(0, 5).join(", ")}`,
    );
  if (p.noLiveToken.length)
    out.push(
      `${p.noLiveToken.length} unrevoked sessions have no live refresh token: ${p.noLiveToken.slice(0, 5).join(", ")}`,
    );
  if (p.unknownTokens)
    out.push(`${p.unknownTokens} refresh tokens handed to clients are unknown to the database`);
  if (p.currentNotLive.length)
    out.push(
      `${p.currentNotLive.length} sessions: the token the client holds is not the live one: ${p.currentNotLive.slice(0, 5).join(", ")}`,
    );
  if (p.revoked.length)
    out.push(
      `${p.revoked.length} sessions were revoked (users logged out): ${p.revoked.slice(0, 5).join(", ")}`,
    );
  return out;
}

/** Reads the refresh-token rows and revoked sessions of the given sessions, with a connection of its own. */
export async function readLedgerRows(
  databaseUrl: string,
  sessionIds: readonly string[],
): Promise<{ tokens: StoredToken[]; revoked: string[] }> {
  const client = new pg.Client(poolConfig(databaseUrl, schemaOf(databaseUrl)));
  client.on("error", () => {});
  await client.connect();
  try {
    const tokens = await client.query<StoredToken>(
      `SELECT session_id::text AS session_id, token_hash, NULL::int AS generation, used_at IS NULL AS live
         FROM refresh_tokens WHERE session_id = ANY($1::uuid[])
       UNION ALL
       SELECT s.id::text, CASE g WHEN s.refresh_generation THEN s.refresh_hash
                                 WHEN s.refresh_generation - 1 THEN s.refresh_previous_hash END,
              g, g = s.refresh_generation
         FROM sessions s, generate_series(1, s.refresh_generation) AS g
        WHERE s.id = ANY($1::uuid[])`,
      [sessionIds],
    );
    const revoked = await client.query<{ id: string }>(
      "SELECT id::text AS id FROM sessions WHERE id = ANY($1::uuid[]) AND revoked_at IS NOT NULL",
      [sessionIds],
    );
    return { tokens: tokens.rows, revoked: revoked.rows.map((r) => r.id) };
  } finally {
    await client.end().catch(() => {});
  }
}
