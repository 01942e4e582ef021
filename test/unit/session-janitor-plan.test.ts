import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { loadSettings, SettingsError } from "../../services/shared/settings/index.ts";
import { needsAnotherBatch, sessionCutoff } from "../../services/token/janitor/janitor-plan.ts";
import { tokenServiceSettings } from "../../services/token/token-service-settings.ts";

const DAY = 86_400_000;

describe("needsAnotherBatch", () => {
  it.each([
    // due sessions seen, refresh-token rows deleted, batch size → another batch?
    [0, 0, 10, false, "nothing was due"],
    [9, 0, 10, false, "saw every due session, none had a token row: all deleted"],
    [10, 0, 10, true, "a full set of due sessions may have left others behind"],
    [3, 1, 10, true, "a token row deleted may have emptied a session the next batch deletes"],
    [10, 10, 10, true, "both full"],
  ])("%i due, %i token rows, batch %i → %s (%s)", (dueSessions, refreshTokens, size, more) => {
    expect(needsAnotherBatch({ dueSessions, refreshTokens, sessions: 0 }, size)).toBe(more);
  });
});

describe("sessionCutoff", () => {
  it("is the instant the retention ago", () => {
    const now = Date.parse("2026-12-06T12:00:00Z");
    expect(sessionCutoff(now, 7 * DAY).toISOString()).toBe("2026-11-29T12:00:00.000Z");
  });
});

const base = {
  GATEHOUSE_ISSUER: "https://auth.test",
  GATEHOUSE_MASTER_KEY: randomBytes(32).toString("base64"),
  DATABASE_URL: "postgres://127.0.0.1/x",
};
const load = (env: Record<string, string>) =>
  loadSettings(tokenServiceSettings, { env: { ...base, ...env } });

describe("janitor settings", () => {
  it("defaults to 7 days of retention, a pass every 10 minutes, batches of 1000", () => {
    const s = load({});
    expect([s.sessionRetention, s.janitorInterval, s.janitorBatchSize]).toEqual([7 * DAY, 600_000, 1000]);
  });

  it.each([
    ["GATEHOUSE_JANITOR_INTERVAL", "off", "janitorInterval", 0],
    ["GATEHOUSE_JANITOR_INTERVAL", "OFF", "janitorInterval", 0],
    ["GATEHOUSE_JANITOR_INTERVAL", "30s", "janitorInterval", 30_000],
    ["GATEHOUSE_SESSION_RETENTION", "30d", "sessionRetention", 30 * DAY],
    ["GATEHOUSE_SESSION_RETENTION", "1h", "sessionRetention", 3_600_000],
    ["GATEHOUSE_JANITOR_BATCH_SIZE", "50", "janitorBatchSize", 50],
  ] as const)("reads %s=%s", (env, value, key, expected) => {
    expect(load({ [env]: value })[key]).toBe(expected);
  });

  it.each([
    // A bare number is seconds: 600 seconds of retention would forget reuse within minutes.
    ["GATEHOUSE_SESSION_RETENTION", "600"],
    ["GATEHOUSE_SESSION_RETENTION", "off"],
    ["GATEHOUSE_SESSION_RETENTION", "400d"],
    ["GATEHOUSE_JANITOR_INTERVAL", "1s"],
    ["GATEHOUSE_JANITOR_INTERVAL", "2d"],
    ["GATEHOUSE_JANITOR_BATCH_SIZE", "0"],
    ["GATEHOUSE_JANITOR_BATCH_SIZE", "1e6"],
  ])("refuses %s=%s, naming the variable", (env, value) => {
    expect(() => load({ [env]: value })).toThrow(SettingsError);
    expect(() => load({ [env]: value })).toThrow(new RegExp(`^${env}: `));
  });
});
