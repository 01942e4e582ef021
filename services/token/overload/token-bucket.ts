/**
 * Token-bucket arithmetic, with the clock passed in: a bucket holds up to `burst` tokens, refills at
 * `ratePerSecond`, and each admitted call takes one. Allocation-free, because it runs on every
 * limited call; the caller owns the state object and the clock.
 */

export interface BucketLimit {
  /** Tokens added per second; may be fractional (0.5 = one call every two seconds). */
  readonly ratePerSecond: number;
  /** Most tokens the bucket holds: how many calls may arrive at once after a quiet spell. */
  readonly burst: number;
}

export interface BucketState {
  tokens: number;
  /** Epoch ms of the last refill. */
  refilledAt: number;
}

/** A bucket that starts full, so a client's first burst is never refused. */
export function fullBucket(limit: BucketLimit, nowMs: number): BucketState {
  return { tokens: limit.burst, refilledAt: nowMs };
}

/**
 * Takes one token if there is one. Returns 0 when the call is admitted, else how many milliseconds
 * until a token will be there (always ≥ 1, so a hint is never "retry now"). A clock that steps back
 * refills nothing rather than draining the bucket.
 */
export function takeToken(bucket: BucketState, limit: BucketLimit, nowMs: number): number {
  const elapsedMs = nowMs - bucket.refilledAt;
  if (elapsedMs > 0) {
    bucket.tokens = Math.min(limit.burst, bucket.tokens + (elapsedMs * limit.ratePerSecond) / 1000);
    bucket.refilledAt = nowMs;
  }
  if (bucket.tokens >= 1) {
    bucket.tokens -= 1;
    return 0;
  }
  return Math.max(1, Math.ceil(((1 - bucket.tokens) * 1000) / limit.ratePerSecond));
}
