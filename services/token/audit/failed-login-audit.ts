import type { Logger } from "../../shared/logging/index.ts";
import { insertFailedLogins } from "../sql/failed-logins.ts";
import type { SqlExecutor } from "../store/sql-executor.ts";

/**
 * Refused client logins, audited so that a flood cannot fill the table: refusals are counted in
 * memory and written once per window, one row per client id (with the count, the first and last
 * refusal), and one row for all client ids that do not exist. So each replica writes at most
 * `MAX_CLIENTS_PER_WINDOW + 1` rows a window however many logins fail.
 */
export interface FailedLoginAuditOptions {
  db: SqlExecutor;
  /** Whether the id names a client (the client change watch); others share one row. */
  isListed(clientId: string): boolean;
  now: () => number;
  log: Logger;
  /** Default {@link FAILED_LOGIN_WINDOW_MS}. */
  windowMs?: number;
}

export interface FailedLoginAudit {
  /** Counts one refused login of `clientId` (as the caller named it). */
  refused(clientId: string): void;
  start(): void;
  /** Writes what was counted so far and starts a new window; what the timer runs. */
  flush(): Promise<void>;
  /** Stops the timer and writes what is left. */
  stop(): Promise<void>;
}

const FAILED_LOGIN_WINDOW_MS = 60_000;
/** Real clients are far fewer; beyond this, ids are counted in the shared row. */
export const MAX_CLIENTS_PER_WINDOW = 1000;

interface Tally {
  failures: number;
  first: number;
  last: number;
  /** Distinct ids, for the unknown-ids row only (bounded by the same cap). */
  ids?: Set<string>;
}

export function createFailedLoginAudit(options: FailedLoginAuditOptions): FailedLoginAudit {
  const { db, now, log } = options;
  const windowMs = options.windowMs ?? FAILED_LOGIN_WINDOW_MS;
  let byClient = new Map<string, Tally>();
  let unknown: Tally | undefined;
  let timer: NodeJS.Timeout | undefined;
  let writing: Promise<void> = Promise.resolve();

  function count(tally: Tally | undefined, t: number): Tally {
    if (tally === undefined) return { failures: 1, first: t, last: t };
    tally.failures += 1;
    tally.last = t;
    return tally;
  }

  function details(tally: Tally) {
    return {
      failures: tally.failures,
      first_at: new Date(tally.first).toISOString(),
      last_at: new Date(tally.last).toISOString(),
      window_seconds: windowMs / 1000,
      ...(tally.ids ? { distinct_ids: tally.ids.size } : {}),
    };
  }

  async function write(): Promise<void> {
    const rows = [...byClient].map(([clientId, tally]) => ({ client_id: clientId, details: details(tally) }));
    if (unknown) rows.push({ client_id: null as unknown as string, details: details(unknown) });
    byClient = new Map();
    unknown = undefined;
    if (rows.length === 0) return;
    try {
      await db.query(insertFailedLogins, [new Date(now()), JSON.stringify(rows)]);
    } catch (err) {
      // Dropped, not kept: holding counts across a database outage is how memory would fill.
      log.warn({ err: (err as Error).message, rows: rows.length }, "failed logins could not be audited");
    }
  }

  function flush(): Promise<void> {
    writing = writing.then(write);
    return writing;
  }

  return {
    refused(clientId) {
      const t = now();
      const tally = byClient.get(clientId);
      if (tally !== undefined) {
        count(tally, t);
        return;
      }
      if (options.isListed(clientId) && byClient.size < MAX_CLIENTS_PER_WINDOW) {
        byClient.set(clientId, count(undefined, t));
        return;
      }
      unknown = count(unknown, t);
      unknown.ids ??= new Set();
      if (unknown.ids.size < MAX_CLIENTS_PER_WINDOW) unknown.ids.add(clientId);
    },
    start() {
      if (timer) return;
      timer = setInterval(() => void flush(), windowMs);
      timer.unref();
    },
    flush,
    async stop() {
      clearInterval(timer);
      timer = undefined;
      await flush();
    },
  };
}
