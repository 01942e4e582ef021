import type { BucketLimit } from "./token-bucket.ts";

/** The two client columns a client's own rate limit is read from. */
export interface ClientRateLimitFields {
  /** Calls per second per method; null: the service-wide `GATEHOUSE_RATE_LIMIT_*` apply. */
  readonly rateLimitPerSecond: number | null;
  /** Bucket size; null: the rate, at least 1 (as `RATE` alone means in the settings). */
  readonly rateLimitBurst: number | null;
}

/**
 * A client's own limit, or undefined when it has none. It replaces the service-wide default of
 * every rate-limited method for this client, each method keeping its own bucket, so a client held
 * to 5/s may still Issue 5/s while it Refreshes 5/s.
 */
export function clientRateLimit(client: ClientRateLimitFields): BucketLimit | undefined {
  const rate = client.rateLimitPerSecond;
  if (rate === null || rate <= 0) return undefined;
  const burst = client.rateLimitBurst;
  return { ratePerSecond: rate, burst: burst !== null && burst > 0 ? burst : Math.max(1, Math.ceil(rate)) };
}
