import { Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { GatehouseError } from "../../services/shared/errors/gatehouse-error.ts";
import { clientRateLimit } from "../../services/token/overload/client-rate-limit.ts";
import { overloadGuardFromSettings } from "../../services/token/overload/guard-from-settings.ts";
import {
  CONCURRENCY_RETRY_MS,
  createOverloadGuard,
  createOverloadMetrics,
  fullBucket,
  limitOrOff,
  rateLimitSetting,
  takeToken,
} from "../../services/token/overload/index.ts";
import { tokenServiceSettings } from "../../services/token/token-service-settings.ts";

describe("token bucket on a fake clock", () => {
  const limit = { ratePerSecond: 10, burst: 3 };

  it("admits a full burst at once, then refuses with the time until the next token", () => {
    const b = fullBucket(limit, 0);
    expect([takeToken(b, limit, 0), takeToken(b, limit, 0), takeToken(b, limit, 0)]).toEqual([0, 0, 0]);
    expect(takeToken(b, limit, 0)).toBe(100);
    expect(takeToken(b, limit, 40)).toBe(60);
    expect(takeToken(b, limit, 100)).toBe(0);
    expect(takeToken(b, limit, 100)).toBe(100);
  });

  it("refills at the rate and never beyond the burst", () => {
    const b = fullBucket(limit, 0);
    for (let i = 0; i < 3; i++) takeToken(b, limit, 0);
    const admitted = (t: number) => {
      let n = 0;
      while (takeToken(b, limit, t) === 0) n++;
      return n;
    };
    expect(admitted(250)).toBe(2); // 2.5 tokens refilled
    expect(admitted(10_000)).toBe(3); // capped at burst after a long quiet spell
  });

  it("sustains exactly the rate over time", () => {
    const b = fullBucket(limit, 0);
    let admitted = 0;
    for (let t = 0; t <= 10_000; t += 1) if (takeToken(b, limit, t) === 0) admitted++;
    expect(admitted).toBe(3 + 100); // the burst, then 10/s for 10 s
  });

  it("handles fractional rates and a clock that steps back", () => {
    const slow = { ratePerSecond: 0.5, burst: 1 };
    const b = fullBucket(slow, 1000);
    expect(takeToken(b, slow, 1000)).toBe(0);
    expect(takeToken(b, slow, 1000)).toBe(2000);
    expect(takeToken(b, slow, 500)).toBe(2000); // backwards: nothing refilled, nothing lost
    expect(takeToken(b, slow, 3000)).toBe(0);
  });

  it("never answers a retry delay below 1 ms", () => {
    const fast = { ratePerSecond: 1_000_000, burst: 1 };
    const b = fullBucket(fast, 0);
    takeToken(b, fast, 0);
    expect(takeToken(b, fast, 0)).toBe(1);
  });
});

describe("rate limit settings", () => {
  const parse = (s: string) => rateLimitSetting().safeParse(s);
  it.each([
    ["200/400", { ratePerSecond: 200, burst: 400 }],
    [" 0.5/3 ", { ratePerSecond: 0.5, burst: 3 }],
    ["50", { ratePerSecond: 50, burst: 50 }],
    ["0.2", { ratePerSecond: 0.2, burst: 1 }],
    ["OFF", "off"],
  ])("parses %j", (raw, value) => {
    expect(parse(raw)).toMatchObject({ success: true, data: value });
  });
  it.each(["", "0/10", "10/0", "-1/5", "10/2.5", "abc", "10/", "/10", "1e3/10", "10/10/10"])(
    "refuses %j",
    (raw) => {
      const r = parse(raw);
      expect(r.success).toBe(false);
      expect(r.error?.issues[0]?.message).toMatch(/RATE\/BURST/);
    },
  );
  it("reads an in-flight cap or off", () => {
    expect(limitOrOff().parse("64")).toBe(64);
    expect(limitOrOff().parse("off")).toBe("off");
    for (const bad of ["0", "-3", "1.5", "lots"]) expect(limitOrOff().safeParse(bad).success).toBe(false);
  });
});

function refusal(fn: () => unknown): GatehouseError {
  try {
    fn();
  } catch (err) {
    if (err instanceof GatehouseError) return err;
    throw err;
  }
  throw new Error("expected a refusal");
}

describe("overload guard", () => {
  it("limits each client and method on its own bucket, with the code and a retry delay", () => {
    let t = 0;
    const registry = new Registry();
    const guard = createOverloadGuard({
      rateLimits: { Issue: { ratePerSecond: 1, burst: 2 }, Refresh: "off" },
      maxInFlightPerClient: "off",
      metrics: createOverloadMetrics(registry),
      now: () => t,
    });
    guard.admit("a", "Issue")();
    guard.admit("a", "Issue")();
    const err = refusal(() => guard.admit("a", "Issue"));
    expect(err).toMatchObject({ code: "rate_limited", retryAfterMs: 1000, metadata: { limit: "rate" } });
    // Another client, another method, an unlimited method: unaffected.
    guard.admit("b", "Issue")();
    for (let i = 0; i < 100; i++) guard.admit("a", "Refresh")();
    guard.admit("a", "Introspect")();
    t = 1000;
    guard.admit("a", "Issue")();
    return registry.getSingleMetricAsString("gatehouse_overload_rejections_total").then((text) => {
      expect(text).toContain('gatehouse_overload_rejections_total{client="a",method="Issue",limit="rate"} 1');
    });
  });

  it("caps calls in flight per client, refuses without taking a token, and frees slots on release", () => {
    let t = 0;
    const guard = createOverloadGuard({
      rateLimits: { Issue: { ratePerSecond: 1, burst: 3 } },
      maxInFlightPerClient: 2,
      now: () => t,
    });
    const r1 = guard.admit("a", "Issue");
    const r2 = guard.admit("a", "ListSessions");
    const err = refusal(() => guard.admit("a", "Issue"));
    expect(err).toMatchObject({
      code: "rate_limited",
      retryAfterMs: CONCURRENCY_RETRY_MS,
      metadata: { limit: "concurrency" },
    });
    guard.admit("b", "Issue")(); // others keep their own slots
    r1();
    r1(); // a second release of one call frees nothing more
    const r3 = guard.admit("a", "Issue"); // the refused call did not spend the third token
    expect(() => guard.admit("a", "ListSessions")).toThrow(GatehouseError);
    r2();
    r3();
    guard.admit("a", "Issue")(); // the third token: only there because the refused call took none
    // The bucket, not the cap, refuses now.
    expect(refusal(() => guard.admit("a", "Issue")).metadata.limit).toBe("rate");
    t = 1000;
    guard.admit("a", "Issue")();
  });

  it("with everything off admits anything", () => {
    const guard = createOverloadGuard({ rateLimits: { Issue: "off" }, maxInFlightPerClient: "off" });
    for (let i = 0; i < 10_000; i++) guard.admit("a", "Issue");
  });

  it("forgets the least recently seen client beyond maxClients without breaking its calls in flight", () => {
    const guard = createOverloadGuard({ rateLimits: {}, maxInFlightPerClient: 1, maxClients: 2 });
    const ra = guard.admit("a", "Issue");
    guard.admit("b", "Issue")();
    guard.admit("c", "Issue")(); // evicts a
    ra(); // releases into a's old state: no throw, no negative count for the new one
    const again = guard.admit("a", "Issue");
    expect(() => guard.admit("a", "Issue")).toThrow(GatehouseError);
    again();
  });
});

describe("a client's own rate limit", () => {
  it.each([
    [{ rateLimitPerSecond: null, rateLimitBurst: null }, undefined],
    [{ rateLimitPerSecond: 0, rateLimitBurst: null }, undefined],
    [
      { rateLimitPerSecond: 5, rateLimitBurst: null },
      { ratePerSecond: 5, burst: 5 },
    ],
    [
      { rateLimitPerSecond: 5, rateLimitBurst: 0 },
      { ratePerSecond: 5, burst: 5 },
    ],
    [
      { rateLimitPerSecond: 5, rateLimitBurst: 20 },
      { ratePerSecond: 5, burst: 20 },
    ],
    [
      { rateLimitPerSecond: 300, rateLimitBurst: 2 },
      { ratePerSecond: 300, burst: 2 },
    ],
  ])("%j reads as %j", (fields, limit) => {
    expect(clientRateLimit(fields)).toEqual(limit);
  });

  function guarded() {
    const clock = { t: 0 };
    const registry = new Registry();
    const guard = createOverloadGuard({
      rateLimits: { Issue: { ratePerSecond: 100, burst: 100 }, IssueServiceToken: "off" },
      maxInFlightPerClient: "off",
      metrics: createOverloadMetrics(registry),
      now: () => clock.t,
    });
    return { guard, registry, clock };
  }
  const own = { ratePerSecond: 2, burst: 3 };
  const admitted = (fn: () => unknown) => {
    let n = 0;
    for (let i = 0; i < 1000; i++) {
      try {
        fn();
        n++;
      } catch (err) {
        if (!(err instanceof GatehouseError)) throw err;
      }
    }
    return n;
  };

  it("replaces the method's default, downwards and upwards, counted as client_rate", async () => {
    const { guard, registry } = guarded();
    expect(admitted(() => guard.admit("low", "Issue", own))).toBe(3); // its burst, not the default's 100
    expect(admitted(() => guard.admit("other", "Issue"))).toBe(100); // the default, untouched
    expect(admitted(() => guard.admit("high", "Issue", { ratePerSecond: 500, burst: 400 }))).toBe(400);
    expect(refusal(() => guard.admit("low", "Issue", own))).toMatchObject({
      code: "rate_limited",
      retryAfterMs: 500,
      metadata: { limit: "client_rate", method: "Issue" },
    });
    const text = await registry.getSingleMetricAsString("gatehouse_overload_rejections_total");
    expect(text).toContain('{client="low",method="Issue",limit="client_rate"} 998');
    expect(text).toContain('{client="other",method="Issue",limit="rate"} 900');
  });

  it("keeps one bucket per method and refills at the client's rate", () => {
    const { guard, clock } = guarded();
    expect(admitted(() => guard.admit("low", "Issue", own))).toBe(3);
    // A method with no service-wide limit is still held to the client's own one.
    expect(admitted(() => guard.admit("low", "IssueServiceToken", own))).toBe(3);
    expect(admitted(() => guard.admit("anyone", "IssueServiceToken"))).toBe(1000);
    // Methods the guard does not rate-limit at all stay unlimited.
    expect(admitted(() => guard.admit("low", "ListSessions", own))).toBe(1000);
    clock.t = 1000;
    expect(admitted(() => guard.admit("low", "Issue", own))).toBe(2);
  });

  it("applies a changed limit to the bucket at once: a lowered burst shrinks the saved-up tokens", () => {
    const { guard, clock } = guarded();
    guard.admit("c", "Issue")(); // default bucket: 99 left
    expect(admitted(() => guard.admit("c", "Issue", own))).toBe(3);
    clock.t = 10_000;
    expect(admitted(() => guard.admit("c", "Issue"))).toBe(100); // limit removed: the default again
  });
});

describe("the token service's guard from its settings", () => {
  it("applies the documented defaults to settings left out of a hand-made config", () => {
    const issue = tokenServiceSettings.rateLimitIssue.schema.parse(
      tokenServiceSettings.rateLimitIssue.default,
    );
    expect(issue).not.toBe("off");
    const burst = (issue as { burst: number }).burst;
    const guard = overloadGuardFromSettings({}, new Registry());
    // Wall clock: the bucket refills while the loop runs, so count up to the first refusal.
    let admitted = 0;
    let refused: GatehouseError | undefined;
    while (refused === undefined && admitted < 2 * burst) {
      try {
        guard.admit("a", "Issue")();
        admitted++;
      } catch (err) {
        refused = err as GatehouseError;
      }
    }
    expect(refused?.metadata.limit).toBe("rate");
    expect(admitted).toBeGreaterThanOrEqual(burst);
    expect(admitted).toBeLessThan(1.5 * burst);
  });

  it("honours off for each limit", () => {
    const guard = overloadGuardFromSettings(
      {
        rateLimitIssue: "off",
        rateLimitRefresh: "off",
        rateLimitIntrospect: "off",
        maxInFlightPerClient: "off",
      },
      new Registry(),
    );
    for (let i = 0; i < 20_000; i++) {
      guard.admit("a", "Issue");
      guard.admit("a", "Refresh");
    }
  });
});
