/**
 * What one measured window of load cost, per call: CPU of the service process, CPU of Postgres, and
 * rows written in the service's schema. The snapshots are taken right as the drivers start (after
 * their preparation) and right as they stop, so nothing outside the window is counted; rows are read
 * once Postgres' statistics have settled (see pg-table-stats.ts).
 */
import pg from "pg";
import { type PgIo, pgIoBetween, readPgIo } from "./pg-io-stats.ts";
import { backendPids, type RowsWritten, rowsWrittenBetween, settledRowsWritten } from "./pg-table-stats.ts";
import { cpuBetween, cpuSnapshot, postgresPids, processTree } from "./process-cpu.ts";
import type { LoadResult } from "./token-load.ts";

export interface WindowCost {
  load: LoadResult;
  /** CPU µs per successful call: the service process (and any process below it). */
  serviceCpuUs: number;
  /** CPU µs per call: every `postgres` process on the machine (what the issue asks for). */
  dbCpuUs: number;
  /**
   * CPU µs per call of the Postgres backends serving the service's own connections only: the same
   * figure without background processes and without other users of this shared Postgres.
   */
  ownBackendsCpuUs: number;
  /**
   * CPU µs per call of the load generator's processes over their measured loop (token-load.ts). It
   * shares the cores with the service, so it is part of what a rate on this machine costs.
   */
  loadCpuUs: number;
  /** Rows inserted + updated per call in the service's schema (when counted). */
  rowsWritten: number | null;
  /** Share of the updates that were HOT (no index entry written). */
  hotUpdateShare: number | null;
  rows: RowsWritten | null;
  /** Postgres' WAL and block counts over the window (totals, not per call), when counted. */
  io: PgIo | null;
}

export interface WindowTarget {
  databaseUrl: string;
  /** The service's schema; also its connections' application_name (bench-processes.ts sets it). */
  schema: string;
  servicePid: number;
  /**
   * Count rows written, waiting this long (ms) for Postgres' statistics to settle at each end of the
   * window (see settledRowsWritten); undefined: CPU only, no waiting.
   */
  statsSettleMs?: number;
}

export async function measureWindow(
  target: WindowTarget,
  run: (atStart: () => Promise<void>) => Promise<LoadResult>,
): Promise<WindowCost> {
  const db = new pg.Client({ connectionString: target.databaseUrl });
  await db.connect();
  try {
    const settle = { minWaitMs: target.statsSettleMs ?? 0 };
    const counting = target.statsSettleMs !== undefined;
    let rows0: RowsWritten | undefined;
    let io0: PgIo | undefined;
    let service0 = new Map<number, number>();
    let postgres0 = new Map<number, number>();
    let own0 = new Map<number, number>();
    const load = await run(async () => {
      if (counting) {
        rows0 = await settledRowsWritten(db, target.schema, settle);
        // Flushed with the row counts: settled too.
        io0 = await readPgIo(db, target.schema);
      }
      own0 = cpuSnapshot(await backendPids(db, target.schema));
      service0 = cpuSnapshot(processTree(target.servicePid));
      postgres0 = cpuSnapshot(postgresPids());
    });
    const service = cpuBetween(service0, cpuSnapshot(processTree(target.servicePid)));
    const postgres = cpuBetween(postgres0, cpuSnapshot(postgresPids()));
    // Backends the pool opened during the window count too.
    const own = cpuBetween(own0, cpuSnapshot(await backendPids(db, target.schema)));
    const rows = counting
      ? rowsWrittenBetween(rows0!, await settledRowsWritten(db, target.schema, settle))
      : null;
    const io = counting ? pgIoBetween(io0!, await readPgIo(db, target.schema)) : null;
    const calls = Math.max(1, load.calls);
    return {
      load,
      serviceCpuUs: service / calls,
      dbCpuUs: postgres / calls,
      ownBackendsCpuUs: own / calls,
      loadCpuUs: load.driverCpuUs / calls,
      rowsWritten: rows === null ? null : (rows.inserted + rows.updated) / calls,
      hotUpdateShare: rows === null || rows.updated === 0 ? null : rows.hotUpdated / rows.updated,
      rows,
      io,
    };
  } finally {
    await db.end();
  }
}
