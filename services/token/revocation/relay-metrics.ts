import type { Registry } from "../../shared/metrics/index.ts";
import { counterOn, gaugeOn } from "../../shared/revocation/metric-helpers.ts";

export type PublishPath = "publish" | "relay" | "republish";
type FailureStage = "redis" | "database" | "timeout";

export interface RelayMetrics {
  published(path: PublishPath, n: number): void;
  failed(stage: FailureStage): void;
  reset(): void;
  pruned(table: "revocation_outbox" | "revoked_access_tokens", n: number): void;
}

export interface BacklogSnapshot {
  backlog: number;
  oldest: Date | null;
}

const NONE: RelayMetrics = { published() {}, failed() {}, reset() {}, pruned() {} };

/**
 * The relay's metrics on the service registry. Backlog and lag are read from the outbox when scraped
 * (one indexed statement, shared by both gauges within a second), not on every pass.
 */
export function createRelayMetrics(
  registry: Registry | undefined,
  backlog: () => Promise<BacklogSnapshot>,
  now: () => number,
): RelayMetrics {
  if (!registry) return NONE;
  const published = counterOn(registry, {
    name: "gatehouse_revocation_events_published_total",
    help: "Revocation events appended to the stream, by path (publish: Revoke's fast path; relay: background; republish: after a lost stream)",
    labelNames: ["path"],
  });
  const failures = counterOn(registry, {
    name: "gatehouse_revocation_publish_failures_total",
    help: "Relay passes or fast-path publishes that failed, by stage (redis, database, timeout)",
    labelNames: ["stage"],
  });
  const resets = counterOn(registry, {
    name: "gatehouse_revocation_relay_resets_total",
    help: "Times the relay found the stream lost or behind and rebuilt it from the outbox",
  });
  const pruned = counterOn(registry, {
    name: "gatehouse_revocation_pruned_total",
    help: "Rows deleted once they no longer mattered, by table",
    labelNames: ["table"],
  });
  let cached: { at: number; value: Promise<BacklogSnapshot> } | undefined;
  const snapshot = () => {
    const t = Date.now();
    if (!cached || t - cached.at > 1000) cached = { at: t, value: backlog() };
    return cached.value;
  };
  gaugeOn(registry, {
    name: "gatehouse_revocation_outbox_backlog",
    help: "Outbox rows not yet published to the stream",
    async collect() {
      const s = await snapshot().catch(() => undefined);
      if (s) this.set(s.backlog);
    },
  });
  gaugeOn(registry, {
    name: "gatehouse_revocation_relay_lag_seconds",
    help: "Age of the oldest unpublished outbox row (0 when none waits)",
    async collect() {
      const s = await snapshot().catch(() => undefined);
      if (s) this.set(s.oldest ? Math.max(0, (now() - s.oldest.getTime()) / 1000) : 0);
    },
  });
  return {
    published(path, n) {
      if (n > 0) published.inc({ path }, n);
    },
    failed: (stage) => failures.inc({ stage }),
    reset: () => resets.inc(),
    pruned(table, n) {
      if (n > 0) pruned.inc({ table }, n);
    },
  };
}
