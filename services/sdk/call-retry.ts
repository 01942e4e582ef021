import type { GatehouseError } from "../shared/errors/gatehouse-error.ts";
import { backoffDelay, sleep } from "../shared/revocation/backoff.ts";

export interface RetryOptions {
  /** First backoff delay; doubles per attempt up to `maxDelayMs`, with jitter. Default 100 ms. */
  minDelayMs?: number;
  /** Default 2 s. */
  maxDelayMs?: number;
  /** No attempt starts later than this after the first one. Default 10 s; 0 disables retries. */
  maxElapsedMs?: number;
  /**
   * For `Refresh` only: no retry starts later than this after the first attempt was sent. Keep it
   * below the client's `refresh_grace_period` (server default 10 s). Default 5 s; 0 disables.
   */
  refreshWindowMs?: number;
}

export interface RetryPlan {
  minDelayMs: number;
  maxDelayMs: number;
  /** Latest start of a retry, in ms after the first attempt. */
  windowMs: number;
}

/** The retry plan for one kind of call, defaults filled in and checked. */
export function retryPlan(options: RetryOptions, kind: "refresh" | "other"): RetryPlan {
  const minDelayMs = options.minDelayMs ?? 100;
  const maxDelayMs = options.maxDelayMs ?? 2000;
  const maxElapsedMs = options.maxElapsedMs ?? 10_000;
  const refreshWindowMs = options.refreshWindowMs ?? 5000;
  for (const [name, value] of Object.entries({ minDelayMs, maxDelayMs, maxElapsedMs, refreshWindowMs })) {
    if (!(Number.isFinite(value) && value >= 0)) throw new TypeError(`retry.${name} must be ≥ 0`);
  }
  const windowMs = kind === "refresh" ? Math.min(maxElapsedMs, refreshWindowMs) : maxElapsedMs;
  return { minDelayMs, maxDelayMs, windowMs };
}

/**
 * After failure number `failures` (1 for the first) with `error`, `elapsedMs` after the first
 * attempt started: how long to wait before the next attempt, or undefined to give up. Only
 * `unavailable` is retried: every other answer is the server's decision, which a retry cannot
 * change, and a timeout leaves the outcome unknown. No retry starts past the plan's window.
 */
export function retryDelay(
  plan: RetryPlan,
  failures: number,
  elapsedMs: number,
  error: GatehouseError,
  random: () => number = Math.random,
): number | undefined {
  if (error.code !== "unavailable") return undefined;
  const delay = Math.max(
    error.retryAfterMs ?? 0,
    backoffDelay(failures, plan.minDelayMs, plan.maxDelayMs, random),
  );
  return elapsedMs + delay > plan.windowMs ? undefined : delay;
}

/** Runs `attempt` until it succeeds or {@link retryDelay} gives up; failures reject as GatehouseErrors. */
export async function withRetry<T>(
  plan: RetryPlan,
  attempt: () => Promise<T>,
  toError: (err: unknown) => GatehouseError,
): Promise<T> {
  const first = performance.now();
  for (let failures = 1; ; failures++) {
    try {
      return await attempt();
    } catch (err) {
      const error = toError(err);
      const delay = retryDelay(plan, failures, performance.now() - first, error);
      if (delay === undefined) throw error;
      await sleep(delay);
    }
  }
}
