import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import type { JwksCache } from "../jwks/jwks-cache.ts";
import type { RevocationSource } from "../revocation-state/revocation-source.ts";
import type { RevocationState } from "../revocation-state/revocation-state.ts";

/** How a request reached the sidecar's decision. */
export type GuardMode = "proxy" | "ext_authz" | "forward_auth" | "inprocess";

/** `ok` (verified), `public` (public route, no valid token), or the error code of a refusal. */
type DecisionReason = string;

export interface DecisionMetrics {
  /** One decision: its outcome and how long it took (seconds). */
  decision(mode: GuardMode, reason: DecisionReason, seconds: number): void;
  /** The verified-token cache answered (hit) or the signature had to be checked (miss). */
  cacheLookup(hit: boolean): void;
  policyReload(outcome: "ok" | "error"): void;
  /** The proxy could not get an answer from the app. */
  upstreamError(reason: "connect_timeout" | "connect_failed" | "reset" | "other"): void;
}

export interface DecisionMetricsSources {
  jwks: Pick<JwksCache, "status">;
  revocation: RevocationState;
  /** Entries in the verified-token cache. */
  cacheSize: () => number;
  /** Whether revocations come from a followed stream or, by choice, from nowhere. */
  revocationSource: RevocationSource;
  now: () => number;
}

/** Sub-millisecond to a second: a cached check takes microseconds, an unknown kid can wait 1 s. */
const BUCKETS = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1];

/**
 * The sidecar's own instruments on `registry`: `gatehouse_sidecar_decisions_total{reason,mode}`,
 * `gatehouse_sidecar_decision_duration_seconds{mode}`, verified-token cache hits and misses (their
 * ratio is the hit ratio), and gauges read at scrape time: JWKS age, key count and staleness,
 * revocation source, revocation-state staleness (and age, when the state knows when it was last
 * confirmed). Label
 * children are looked up once and kept, so a decision costs two map lookups and two updates.
 */
export function createDecisionMetrics(registry: Registry, sources: DecisionMetricsSources): DecisionMetrics {
  const registers = [registry];
  const decisions = new Counter({
    name: "gatehouse_sidecar_decisions_total",
    help: "Authorization decisions by outcome (ok, public, or the refusal reason) and entry point.",
    labelNames: ["reason", "mode"] as const,
    registers,
  });
  const duration = new Histogram({
    name: "gatehouse_sidecar_decision_duration_seconds",
    help: "Time from request to decision (token parsing, verification, policy, revocation).",
    labelNames: ["mode"] as const,
    buckets: BUCKETS,
    registers,
  });
  const hits = new Counter({
    name: "gatehouse_sidecar_token_cache_hits_total",
    help: "Verifications answered by the verified-token cache (no signature check).",
    registers,
  });
  const misses = new Counter({
    name: "gatehouse_sidecar_token_cache_misses_total",
    help: "Verifications that had to check a signature (hit ratio = hits / (hits + misses)).",
    registers,
  });
  const reloads = new Counter({
    name: "gatehouse_sidecar_policy_reloads_total",
    help: "Route policy reloads after the file changed, by outcome (error keeps the previous policy).",
    labelNames: ["outcome"] as const,
    registers,
  });
  const upstreamErrors = new Counter({
    name: "gatehouse_sidecar_upstream_errors_total",
    help: "Proxied requests the app did not answer (502 / UNAVAILABLE or a cut stream), by cause.",
    labelNames: ["reason"] as const,
    registers,
  });
  new Gauge({
    name: "gatehouse_sidecar_token_cache_entries",
    help: "Entries in the verified-token cache.",
    registers,
    collect() {
      this.set(sources.cacheSize());
    },
  });
  new Gauge({
    name: "gatehouse_sidecar_jwks_age_seconds",
    help: "Time since the JWKS was last fetched or confirmed (+Inf before the first load).",
    registers,
    collect() {
      this.set(sources.jwks.status().ageMs / 1000);
    },
  });
  new Gauge({
    name: "gatehouse_sidecar_jwks_keys",
    help: "Verification keys in the cached JWKS.",
    registers,
    collect() {
      this.set(sources.jwks.status().keys);
    },
  });
  new Gauge({
    name: "gatehouse_sidecar_jwks_stale",
    help: "1 when the cached JWKS is older than its maximum age (its keys are still used).",
    registers,
    collect() {
      this.set(sources.jwks.status().stale ? 1 : 0);
    },
  });
  new Gauge({
    name: "gatehouse_sidecar_revocation_source",
    help: "1 for where revocations come from: stream, or none (revoked tokens pass until they expire).",
    labelNames: ["source"] as const,
    registers,
  }).set({ source: sources.revocationSource }, 1);
  new Gauge({
    name: "gatehouse_sidecar_revocation_stale",
    help: "1 when the revocation state has not been confirmed current within its staleness bound.",
    registers,
    collect() {
      this.set(sources.revocation.isStale(sources.now()) ? 1 : 0);
    },
  });
  new Gauge({
    name: "gatehouse_sidecar_revocation_age_seconds",
    help: "Time since the revocation state was last confirmed current (+Inf before the first time).",
    registers,
    collect() {
      const freshAt = (sources.revocation as { freshAt?: unknown }).freshAt;
      if (typeof freshAt === "number") this.set((sources.now() - freshAt) / 1000);
      else if ("freshAt" in sources.revocation) this.set(Number.POSITIVE_INFINITY);
    },
  });

  const decisionChildren = new Map<string, Counter.Internal>();
  const durationChildren = new Map<string, Histogram.Internal<"mode">>();
  return {
    decision(mode, reason, seconds) {
      const key = `${mode} ${reason}`;
      let counter = decisionChildren.get(key);
      if (counter === undefined) {
        counter = decisions.labels({ reason, mode });
        decisionChildren.set(key, counter);
      }
      counter.inc();
      let histogram = durationChildren.get(mode);
      if (histogram === undefined) {
        histogram = duration.labels({ mode });
        durationChildren.set(mode, histogram);
      }
      histogram.observe(seconds);
    },
    cacheLookup(hit) {
      (hit ? hits : misses).inc();
    },
    policyReload(outcome) {
      reloads.inc({ outcome });
    },
    upstreamError(reason) {
      upstreamErrors.inc({ reason });
    },
  };
}
