/**
 * What a window of load cost Postgres in I/O, from its own statistics: WAL written (and how much of it
 * was full-page images, the 8 KiB copy of a page on its first change after a checkpoint) and the
 * schema's table and index blocks found in shared_buffers or read in from outside it. The soak uses
 * these to show what 5M sessions cost Postgres beyond an empty database: the SQL per refresh is the
 * same, so the difference is in pages.
 *
 * WAL counters are cluster-wide: read them with nothing else writing. Like the table counters in
 * pg-table-stats.ts, all of these are flushed lazily by each backend: read them settled.
 */
import type pg from "pg";

export interface PgIo {
  walBytes: number;
  /** Full-page images written to WAL. */
  walFpi: number;
  /** The schema's heap and index blocks read from outside shared_buffers (the OS cache or disk). */
  blocksRead: number;
  /** The same, found in shared_buffers. */
  blocksHit: number;
  checkpoints: number;
}

type Queryable = Pick<pg.Client, "query">;

export async function readPgIo(db: Queryable, schema: string): Promise<PgIo> {
  await db.query("SELECT pg_stat_clear_snapshot()");
  const { rows } = await db.query<Record<keyof PgIo, string | null>>(
    `SELECT w.wal_bytes AS "walBytes", w.wal_fpi AS "walFpi",
            (SELECT sum(coalesce(heap_blks_read, 0) + coalesce(idx_blks_read, 0))
               FROM pg_statio_user_tables WHERE schemaname = $1) AS "blocksRead",
            (SELECT sum(coalesce(heap_blks_hit, 0) + coalesce(idx_blks_hit, 0))
               FROM pg_statio_user_tables WHERE schemaname = $1) AS "blocksHit",
            (SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter) AS checkpoints
       FROM pg_stat_wal w`,
    [schema],
  );
  const r = rows[0]!;
  return {
    walBytes: Number(r.walBytes ?? 0),
    walFpi: Number(r.walFpi ?? 0),
    blocksRead: Number(r.blocksRead ?? 0),
    blocksHit: Number(r.blocksHit ?? 0),
    checkpoints: Number(r.checkpoints ?? 0),
  };
}

export function pgIoBetween(before: PgIo, after: PgIo): PgIo {
  return {
    walBytes: after.walBytes - before.walBytes,
    walFpi: after.walFpi - before.walFpi,
    blocksRead: after.blocksRead - before.blocksRead,
    blocksHit: after.blocksHit - before.blocksHit,
    checkpoints: after.checkpoints - before.checkpoints,
  };
}

/** The server settings that decide those counts, for a benchmark's notes. */
export async function pgCacheSettings(db: Queryable): Promise<Record<string, string>> {
  const { rows } = await db.query<{ name: string; setting: string }>(
    `SELECT name, current_setting(name) AS setting FROM pg_settings
      WHERE name IN ('server_version', 'shared_buffers', 'max_wal_size', 'checkpoint_timeout',
                     'wal_compression', 'synchronous_commit', 'full_page_writes')
      ORDER BY name`,
  );
  return Object.fromEntries(rows.map((r) => [r.name, r.setting]));
}
