import { describe, expect, it } from "vitest";
import { retryDelay, retryPlan } from "../../services/sdk/call-retry.ts";
import { createSingleFlight } from "../../services/sdk/single-flight.ts";
import { GatehouseError } from "../../services/shared/errors/gatehouse-error.ts";

/** The client's retry rule, one row per edge; `random: () => 1` takes the full backoff (no jitter). */
const plan = retryPlan(
  { minDelayMs: 100, maxDelayMs: 1000, maxElapsedMs: 10_000, refreshWindowMs: 5000 },
  "refresh",
);
const unavailable = new GatehouseError("unavailable", "down");
const full = () => 1;

describe("retryDelay", () => {
  it.each([
    ["first failure: min delay", 1, 0, unavailable, 100],
    ["doubles", 3, 0, unavailable, 400],
    ["capped at max", 10, 0, unavailable, 1000],
    ["last retry that still starts inside the window", 1, 4900, unavailable, 100],
    ["one that would start past it: give up", 1, 4901, unavailable, undefined],
    [
      "the server's RetryInfo wins when longer",
      1,
      0,
      new GatehouseError("unavailable", "x", { retryAfterMs: 700 }),
      700,
    ],
    ["invalid_grant: the server's decision", 1, 0, new GatehouseError("invalid_grant", "x"), undefined],
    ["refresh_token_reused", 1, 0, new GatehouseError("refresh_token_reused", "x"), undefined],
    ["rate_limited is not unavailable", 1, 0, new GatehouseError("rate_limited", "x"), undefined],
    ["timeout: outcome unknown", 1, 0, new GatehouseError("request_timeout", "x"), undefined],
  ] as const)("%s", (_name, failures, elapsed, error, expected) => {
    expect(retryDelay(plan, failures, elapsed, error, full)).toBe(expected);
  });

  it("jitters between half and all of the backoff", () => {
    expect(retryDelay(plan, 2, 0, unavailable, () => 0)).toBe(100);
    expect(retryDelay(plan, 2, 0, unavailable, () => 1)).toBe(200);
  });
});

describe("retryPlan", () => {
  it("gives Refresh the shorter of its window and the overall limit; other calls the limit", () => {
    expect(retryPlan({}, "refresh").windowMs).toBe(5000);
    expect(retryPlan({}, "other").windowMs).toBe(10_000);
    expect(retryPlan({ maxElapsedMs: 2000 }, "refresh").windowMs).toBe(2000);
    expect(retryPlan({ refreshWindowMs: 0 }, "refresh").windowMs).toBe(0);
  });

  it("refuses negative or non-numbers", () => {
    expect(() => retryPlan({ minDelayMs: -1 }, "other")).toThrow(TypeError);
    expect(() => retryPlan({ refreshWindowMs: Number.NaN }, "other")).toThrow(TypeError);
  });
});

describe("single flight", () => {
  it("shares one call per key until it settles", async () => {
    const flight = createSingleFlight<number>();
    let calls = 0;
    let release!: (n: number) => void;
    const start = () => {
      calls++;
      return new Promise<number>((resolve) => {
        release = resolve;
      });
    };
    const a = flight.run("k", start);
    const b = flight.run("k", start);
    expect(calls).toBe(1);
    expect(flight.size).toBe(1);
    release(7);
    expect(await Promise.all([a, b])).toEqual([7, 7]);
    expect(flight.size).toBe(0);
    const c = flight.run("k", start);
    expect(calls).toBe(2);
    release(8);
    expect(await c).toBe(8);
  });
});
