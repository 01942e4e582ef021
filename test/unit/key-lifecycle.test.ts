import { describe, expect, it } from "vitest";
import {
  activatableAt,
  type KeyTimes,
  keyLifecyclePolicy,
  nextRotationAt,
  planRotation,
  retirableAt,
} from "../../services/token/keys/key-lifecycle.ts";

const MIN = 60_000;
const HOUR = 3_600_000;
const DAY = 86_400_000;
const T0 = Date.parse("2026-01-01T00:00:00Z");

const policy = keyLifecyclePolicy({
  keyRotationInterval: 30 * DAY,
  keyPublishDelay: HOUR,
  jwksMaxAge: 5 * MIN,
  maxAccessTokenTtl: 60 * MIN,
  reloadMs: 5000,
});

const active = (activatedAt: number): KeyTimes => ({
  kid: "A",
  status: "active",
  createdAt: activatedAt,
  activatedAt,
  retiringAt: null,
});
const staged = (kid: string, createdAt: number): KeyTimes => ({
  kid,
  status: "staged",
  createdAt,
  activatedAt: null,
  retiringAt: null,
});
const retiring = (kid: string, retiringAt: number): KeyTimes => ({
  kid,
  status: "retiring",
  createdAt: 0,
  activatedAt: 0,
  retiringAt,
});

const scheduled = { schedule: true, force: false };

describe("key lifecycle policy", () => {
  it("never lets a staged key sign before the JWKS cache period and a reload have passed", () => {
    expect(policy.minPublishMs).toBe(5 * MIN + 5000);
    expect(activatableAt({ createdAt: T0 }, policy)).toBe(T0 + 5 * MIN + 5000);
    const short = keyLifecyclePolicy({
      keyRotationInterval: 30 * DAY,
      keyPublishDelay: 0,
      jwksMaxAge: 10 * MIN,
      maxAccessTokenTtl: 60 * MIN,
      reloadMs: 5000,
    });
    expect(short.publishDelayMs).toBe(10 * MIN + 5000);
  });

  it("keeps a retiring key published for the longest token lifetime plus a reload", () => {
    expect(retirableAt({ retiringAt: T0 }, policy)).toBe(T0 + 60 * MIN + 5000);
  });
});

describe("planRotation", () => {
  const due = T0 + 30 * DAY;
  it.each([
    [
      "nothing is due right after activation",
      [active(T0)],
      T0 + DAY,
      scheduled,
      { stage: false, activate: null },
    ],
    [
      "stages a key one publish delay before the active one is due",
      [active(T0)],
      due - HOUR,
      scheduled,
      { stage: true, activate: null },
    ],
    [
      "stages only one key",
      [active(T0), staged("S", due - HOUR)],
      due - HOUR + MIN,
      scheduled,
      { stage: false, activate: null },
    ],
    [
      "waits for the staged key to be published long enough",
      [active(T0), staged("S", due - MIN)],
      due,
      scheduled,
      { stage: false, activate: null },
    ],
    [
      "activates a staged key once due and published",
      [active(T0), staged("S", due - HOUR)],
      due,
      scheduled,
      { stage: false, activate: "S" },
    ],
    [
      "prefers the newest key published long enough",
      [active(T0), staged("old", T0), staged("new", due - HOUR), staged("young", due - MIN)],
      due,
      scheduled,
      { activate: "new" },
    ],
    [
      "does not stage or activate when the schedule is off",
      [active(T0), staged("S", T0)],
      due + DAY,
      { schedule: false, force: false },
      { stage: false, activate: null },
    ],
    [
      "force stages at once",
      [active(T0)],
      T0 + MIN,
      { schedule: false, force: true },
      { stage: true, activate: null },
    ],
    [
      "force activates after the JWKS cache period, not the publish delay",
      [active(T0), staged("S", T0)],
      T0 + 6 * MIN,
      { schedule: false, force: true },
      { activate: "S" },
    ],
    [
      "force never activates a key published too briefly",
      [active(T0), staged("S", T0)],
      T0 + 4 * MIN,
      { schedule: true, force: true },
      { activate: null },
    ],
  ] as const)("%s", (_label, keys, now, options, expected) => {
    expect(planRotation(keys, now, policy, options)).toMatchObject(expected);
  });

  it("retires retiring keys whose tokens have expired, schedule or not", () => {
    const keys = [active(T0), retiring("R1", T0), retiring("R2", T0 + 30 * MIN)];
    for (const schedule of [true, false]) {
      expect(planRotation(keys, T0 + 61 * MIN, policy, { schedule, force: false }).retire).toEqual(["R1"]);
    }
  });

  it("without an active key, activates the newest staged key at once, or stages one to activate", () => {
    expect(planRotation([staged("S", T0)], T0, policy, scheduled)).toMatchObject({
      noActiveKey: true,
      activate: "S",
      stage: false,
    });
    expect(planRotation([], T0, policy, { schedule: false, force: false })).toMatchObject({
      noActiveKey: true,
      activate: null,
      stage: true,
    });
  });
});

describe("nextRotationAt", () => {
  const due = T0 + 30 * DAY;
  it.each([
    ["the staging time when nothing is staged", [active(T0)], true, due - HOUR],
    ["the activation time when a key is staged", [active(T0), staged("S", due - HOUR)], true, due],
    [
      "later, when the staged key needs more publishing",
      [active(T0), staged("S", due - MIN)],
      true,
      due - MIN + HOUR,
    ],
    ["a retirement before anything else", [active(T0), retiring("R", T0)], true, T0 + 60 * MIN + 5000],
    [
      "only retirements when the schedule is off",
      [active(T0), retiring("R", T0)],
      false,
      T0 + 60 * MIN + 5000,
    ],
    ["never, when the schedule is off and nothing retires", [active(T0)], false, null],
  ] as const)("is %s", (_label, keys, schedule, expected) => {
    expect(nextRotationAt(keys, policy, { schedule })).toBe(expected);
  });
});
