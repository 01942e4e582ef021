/**
 * What a benchmark's schema holds and has written, read from Postgres' own statistics: rows inserted
 * and updated (pg_stat_user_tables) and bytes on disk (pg_total_relation_size: table, indexes, TOAST).
 */
import type pg from "pg";

export interface RowsWritten {
  inserted: number;
  updated: number;
  /** Updates that changed no indexed column and fit on the same page (no index entry written). */
  hotUpdated: number;
  perTable: Record<string, { inserted: number; updated: number; hotUpdated: number }>;
}

type Queryable = Pick<pg.Client, "query">;

async function readRowsWritten(db: Queryable, schema: string): Promise<RowsWritten> {
  // Statistics are read once per transaction and cached until it ends (stats_fetch_consistency):
  // clear that cache so each poll sees what has been flushed since.
  await db.query("SELECT pg_stat_clear_snapshot()");
  const { rows } = await db.query<{ relname: string; ins: string; upd: string; hot: string }>(
    `SELECT relname, n_tup_ins AS ins, n_tup_upd AS upd, n_tup_hot_upd AS hot
       FROM pg_stat_user_tables WHERE schemaname = $1`,
    [schema],
  );
  const out: RowsWritten = { inserted: 0, updated: 0, hotUpdated: 0, perTable: {} };
  for (const r of rows) {
    const t = { inserted: Number(r.ins), updated: Number(r.upd), hotUpdated: Number(r.hot) };
    out.perTable[r.relname] = t;
    out.inserted += t.inserted;
    out.updated += t.updated;
    out.hotUpdated += t.hotUpdated;
  }
  return out;
}

/**
 * Rows written so far in `schema`, once every backend has flushed its counts. Postgres 15 backends
 * keep table counters in local memory and flush them to shared memory when they go idle, but not
 * twice within a second: a backend that goes idle less than a second after its last flush (as every
 * backend of a busy pool does when the load stops) schedules the flush 10 s later
 * (PGSTAT_IDLE_INTERVAL), and pg_stat_force_next_flush() acts on the calling backend alone. So: call
 * this with the load stopped; it waits `minWaitMs` (default 11 s: that interval and a margin), then
 * until the total has not moved for `quietMs`.
 */
export async function settledRowsWritten(
  db: Queryable,
  schema: string,
  { minWaitMs = 11_000, quietMs = 1000 } = {},
): Promise<RowsWritten> {
  const started = performance.now();
  let last = await readRowsWritten(db, schema);
  let stableSince = performance.now();
  while (performance.now() - started < minWaitMs || performance.now() - stableSince < quietMs) {
    await new Promise((r) => setTimeout(r, 250));
    const next = await readRowsWritten(db, schema);
    if (next.inserted !== last.inserted || next.updated !== last.updated) stableSince = performance.now();
    last = next;
  }
  return last;
}

export function rowsWrittenBetween(before: RowsWritten, after: RowsWritten): RowsWritten {
  const perTable: RowsWritten["perTable"] = {};
  for (const [name, a] of Object.entries(after.perTable)) {
    const b = before.perTable[name] ?? { inserted: 0, updated: 0, hotUpdated: 0 };
    const d = {
      inserted: a.inserted - b.inserted,
      updated: a.updated - b.updated,
      hotUpdated: a.hotUpdated - b.hotUpdated,
    };
    if (d.inserted !== 0 || d.updated !== 0) perTable[name] = d;
  }
  return {
    inserted: after.inserted - before.inserted,
    updated: after.updated - before.updated,
    hotUpdated: after.hotUpdated - before.hotUpdated,
    perTable,
  };
}

/** Table + index + TOAST bytes of every table in `schema`, by table. */
export async function schemaBytes(db: Queryable, schema: string): Promise<Record<string, number>> {
  const { rows } = await db.query<{ relname: string; bytes: string }>(
    `SELECT c.relname, pg_total_relation_size(c.oid) AS bytes
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = $1 AND c.relkind IN ('r', 'p')`,
    [schema],
  );
  return Object.fromEntries(rows.map((r) => [r.relname, Number(r.bytes)]));
}

/** Pids of the backends serving connections whose application_name is `name`. */
export async function backendPids(db: Queryable, name: string): Promise<number[]> {
  const { rows } = await db.query<{ pid: number }>(
    "SELECT pid FROM pg_stat_activity WHERE application_name = $1",
    [name],
  );
  return rows.map((r) => r.pid);
}
