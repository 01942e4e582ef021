import type { Registry } from "../../shared/metrics/index.ts";
import { counterOn, gaugeOn, histogramOn } from "../../shared/revocation/metric-helpers.ts";
import type { MemoryRevocationState } from "../revocation-state/index.ts";

export interface FollowerMetrics {
  applied(phase: "bootstrap" | "follow", n: number): void;
  skipped(n: number): void;
  /** Seconds from the event's commit to now, for events that arrived live. */
  lag(seconds: number): void;
  reset(): void;
  error(): void;
  bootstrapped(seconds: number): void;
}

const NONE: FollowerMetrics = {
  applied() {},
  skipped() {},
  lag() {},
  reset() {},
  error() {},
  bootstrapped() {},
};

/** The follower's metrics on the sidecar registry; state size and freshness are read when scraped. */
export function createFollowerMetrics(
  registry: Registry | undefined,
  state: Pick<MemoryRevocationState, "size" | "freshAt">,
): FollowerMetrics {
  if (!registry) return NONE;
  const applied = counterOn(registry, {
    name: "gatehouse_revocation_events_applied_total",
    help: "Revocation events applied to the state, by phase (bootstrap or follow)",
    labelNames: ["phase"],
  });
  const skipped = counterOn(registry, {
    name: "gatehouse_revocation_entries_skipped_total",
    help: "Stream entries skipped because they are not a revocation event this sidecar understands",
  });
  const lag = histogramOn(registry, {
    name: "gatehouse_revocation_lag_seconds",
    help: "Time from a revocation's commit to its being applied here (live events only)",
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
  });
  const resets = counterOn(registry, {
    name: "gatehouse_revocation_follower_resets_total",
    help: "Times the stream was found lost or reset and the state re-bootstrapped (keeping its entries)",
  });
  const errors = counterOn(registry, {
    name: "gatehouse_revocation_stream_errors_total",
    help: "Failed reads of the revocation stream (each followed by a reconnect with backoff)",
  });
  const bootstrap = gaugeOn(registry, {
    name: "gatehouse_revocation_bootstrap_seconds",
    help: "Duration of the last bootstrap from the stream",
  });
  gaugeOn(registry, {
    name: "gatehouse_revocation_state_entries",
    help: "Entries in the revocation state",
    collect() {
      this.set(state.size);
    },
  });
  gaugeOn(registry, {
    name: "gatehouse_revocation_last_confirmed_seconds",
    help: "When the stream was last confirmed current (epoch seconds; 0 before the first read)",
    collect() {
      this.set((state.freshAt ?? 0) / 1000);
    },
  });
  return {
    applied(phase, n) {
      if (n > 0) applied.inc({ phase }, n);
    },
    skipped(n) {
      if (n > 0) skipped.inc(n);
    },
    lag: (seconds) => lag.observe(Math.max(0, seconds)),
    reset: () => resets.inc(),
    error: () => errors.inc(),
    bootstrapped: (seconds) => bootstrap.set(seconds),
  };
}
