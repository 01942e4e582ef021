import type { Registry } from "../../shared/metrics/index.ts";
import { counterOn, gaugeOn } from "../../shared/revocation/metric-helpers.ts";

type JanitorTable = "sessions" | "refresh_tokens";

export interface JanitorMetrics {
  deleted(table: JanitorTable, n: number): void;
  backlog(n: number): void;
  /** A pass that held the lock finished, at this epoch-ms instant. */
  passed(atMs: number): void;
}

const NONE: JanitorMetrics = { deleted() {}, backlog() {}, passed() {} };

/** The janitor's metrics on the service registry (none without one: the CLI's single pass). */
export function createJanitorMetrics(registry: Registry | undefined, backlogCap: number): JanitorMetrics {
  if (!registry) return NONE;
  const deleted = counterOn(registry, {
    name: "gatehouse_janitor_deleted_total",
    help: "Rows the session janitor deleted past GATEHOUSE_SESSION_RETENTION, by table",
    labelNames: ["table"],
  });
  const backlog = gaugeOn(registry, {
    name: "gatehouse_janitor_backlog",
    help: `Sessions past retention not yet deleted, as of this replica's last pass (counted up to ${backlogCap})`,
  });
  const lastPass = gaugeOn(registry, {
    name: "gatehouse_janitor_last_pass_timestamp_seconds",
    help: "When a janitor pass of this replica last held the lock and finished (Unix seconds)",
  });
  return {
    deleted(table, n) {
      if (n > 0) deleted.inc({ table }, n);
    },
    backlog: (n) => backlog.set(n),
    passed: (atMs) => lastPass.set(atMs / 1000),
  };
}
