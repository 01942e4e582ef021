import { LRUCache } from "lru-cache";
import { GatehouseError } from "../../shared/errors/gatehouse-error.ts";
import { NO_OVERLOAD_METRICS, type OverloadMetrics } from "./overload-metrics.ts";
import type { RateLimit } from "./rate-limit-setting.ts";
import { type BucketLimit, type BucketState, fullBucket, takeToken } from "./token-bucket.ts";

export interface OverloadGuardOptions {
  /**
   * The service-wide token bucket per client for each named method (`off`: none). A client's own
   * limit (`admit`'s third argument) replaces it for these methods only; methods not listed are
   * never rate limited.
   */
  rateLimits: Readonly<Record<string, RateLimit>>;
  /** Calls one client may have in flight at once (over every guarded method), or `off`. */
  maxInFlightPerClient: number | "off";
  metrics?: OverloadMetrics;
  /** Clients whose state is kept; the least recently seen is forgotten first. Default 10,000. */
  maxClients?: number;
  /** Milliseconds on any steady clock; default `performance.now`. Injectable for tests. */
  now?: () => number;
}

/** Ends an admitted call; call exactly once, whether the call succeeded or failed. */
type Release = () => void;

export interface OverloadGuard {
  /**
   * Admits one call of `method` by `clientId`, or throws `rate_limited` (RESOURCE_EXHAUSTED) with a
   * retry delay: refused fast, never queued, so one client's flood cannot hold the others back.
   * `own` is the client's own rate limit (clients table), used instead of the method's default.
   */
  admit(clientId: string, method: string, own?: BucketLimit): Release;
}

/**
 * How long to tell a client refused for having too many calls in flight to wait. A slot frees as
 * soon as one of its own calls ends, which takes milliseconds; the hint only spreads the retries.
 */
export const CONCURRENCY_RETRY_MS = 50;

interface ClientState {
  inFlight: number;
  readonly buckets: Map<string, BucketState>;
}

const NOTHING: Release = () => {};

/**
 * Per-client rate limits and in-flight caps for the token service. State lives in a bounded LRU: a
 * forgotten client starts again with full buckets, which only matters if more than `maxClients`
 * clients are busy at once; calls in flight release into the state they were admitted with.
 */
export function createOverloadGuard(options: OverloadGuardOptions): OverloadGuard {
  const now = options.now ?? (() => performance.now());
  const metrics = options.metrics ?? NO_OVERLOAD_METRICS;
  const maxInFlight = options.maxInFlightPerClient === "off" ? Infinity : options.maxInFlightPerClient;
  const limits = new Map(Object.entries(options.rateLimits));
  if (limits.size === 0 && maxInFlight === Infinity) return { admit: () => NOTHING };
  const clients = new LRUCache<string, ClientState>({ max: options.maxClients ?? 10_000 });

  return {
    admit(clientId, method, own) {
      let state = clients.get(clientId);
      if (state === undefined) {
        state = { inFlight: 0, buckets: new Map() };
        clients.set(clientId, state);
      }
      if (state.inFlight >= maxInFlight) {
        metrics.rejected(clientId, method, "concurrency");
        throw new GatehouseError(
          "rate_limited",
          `client ${clientId} has ${maxInFlight} calls in flight already; retry after ${CONCURRENCY_RETRY_MS} ms`,
          { retryAfterMs: CONCURRENCY_RETRY_MS, metadata: { limit: "concurrency", method } },
        );
      }
      const byDefault = limits.get(method);
      const limit = byDefault === undefined ? undefined : (own ?? byDefault);
      if (limit !== undefined && limit !== "off") {
        const t = now();
        let bucket = state.buckets.get(method);
        if (bucket === undefined) {
          bucket = fullBucket(limit, t);
          state.buckets.set(method, bucket);
        } else if (bucket.tokens > limit.burst) {
          // The client's limit was lowered since: its saved-up burst shrinks with it.
          bucket.tokens = limit.burst;
        }
        const waitMs = takeToken(bucket, limit, t);
        if (waitMs > 0) {
          const kind = own === undefined ? "rate" : "client_rate";
          metrics.rejected(clientId, method, kind);
          throw new GatehouseError(
            "rate_limited",
            `client ${clientId} is over its ${method} rate limit; retry after ${waitMs} ms`,
            { retryAfterMs: waitMs, metadata: { limit: kind, method } },
          );
        }
      }
      if (maxInFlight === Infinity) return NOTHING;
      const admitted = state;
      admitted.inFlight += 1;
      let released = false;
      return () => {
        if (released) return;
        released = true;
        admitted.inFlight -= 1;
      };
    },
  };
}
