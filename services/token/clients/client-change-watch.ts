import type { Logger } from "../../shared/logging/index.ts";
import { clientRowVersions, clientTableFingerprint } from "../sql/client-versions.ts";
import type { SqlExecutor } from "../store/sql-executor.ts";

/**
 * Makes a change to a client (secret rotation, role or allow-list change, disable, enable, delete)
 * reach this replica's credential cache within a second, whichever replica made it.
 *
 * Why a polled row version and not an event on the revocation stream: the stream is Redis, and a
 * token service may run without Redis (`gatehouse dev`, or Redis down), while every replica always
 * has the database. The version is Postgres's own `xmin`, so no migration, trigger or writer clock
 * is involved, every write path (admin RPCs, the CLI's direct mode, SQL by hand) is covered, and a
 * plain query works behind PgBouncer in transaction mode (no LISTEN/NOTIFY, no session state).
 * Each poll reads one fingerprint row; only when it moved are the (id, version) pairs read and
 * compared, and the clients whose version moved, appeared or vanished are reported.
 */
export interface ClientChangeWatchOptions {
  db: SqlExecutor;
  /** Called with the ids of clients that changed since the last poll (never on the first). */
  onChange(clientIds: readonly string[]): void;
  log: Logger;
  /** Default {@link CLIENT_WATCH_INTERVAL_MS}. */
  intervalMs?: number;
}

export interface ClientChangeWatch {
  /** Reads the table once, so `isListed` answers before the first interval. */
  start(): Promise<void>;
  /** Whether `clientId` was a row at the last poll; true before the first one (nothing known yet). */
  isListed(clientId: string): boolean;
  /** One poll now: what the timer runs. */
  poll(): Promise<void>;
  stop(): Promise<void>;
}

/** Four polls a second: a change is seen within a second even when one poll is slow or fails. */
const CLIENT_WATCH_INTERVAL_MS = 250;

/**
 * How long after a client change every replica may still act on the old client: one interval, a
 * slow poll, and calls that authenticated just before and are still signing.
 */
export const CLIENT_CHANGE_BOUND_MS = 2000;

export function createClientChangeWatch(options: ClientChangeWatchOptions): ClientChangeWatch {
  const intervalMs = options.intervalMs ?? CLIENT_WATCH_INTERVAL_MS;
  let versions: Map<string, string> | undefined;
  let fingerprint: string | undefined;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  let failing = false;

  async function pollOnce(): Promise<void> {
    const [row] = await options.db.query(clientTableFingerprint, []);
    if (row === undefined || row.fingerprint === fingerprint) return;
    const rows = await options.db.query(clientRowVersions, []);
    const next = new Map(rows.map((r) => [r.id, r.version]));
    if (versions !== undefined) {
      const changed = [...next].filter(([id, v]) => versions!.get(id) !== v).map(([id]) => id);
      for (const id of versions.keys()) if (!next.has(id)) changed.push(id);
      if (changed.length > 0) options.onChange(changed);
    }
    versions = next;
    fingerprint = row.fingerprint;
  }

  function poll(): Promise<void> {
    running ??= pollOnce()
      .then(() => {
        if (failing) options.log.info("client change watch recovered");
        failing = false;
      })
      .catch((err: Error) => {
        // Logged once per outage: the next poll retries, and the cache TTL still bounds staleness.
        if (!failing) options.log.warn({ err: err.message }, "client change watch cannot read clients");
        failing = true;
      })
      .finally(() => {
        running = undefined;
      });
    return running;
  }

  return {
    async start() {
      await poll();
      timer = setInterval(() => void poll(), intervalMs);
      timer.unref();
    },
    isListed: (clientId) => versions === undefined || versions.has(clientId),
    poll,
    async stop() {
      clearInterval(timer);
      timer = undefined;
      await running;
    },
  };
}
