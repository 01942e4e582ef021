import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { loadSettings, SettingsError } from "../../services/shared/settings/index.ts";
import { retentionCutoff } from "../../services/token/audit/audit-retention.ts";
import { tokenServiceSettings } from "../../services/token/token-service-settings.ts";

const DAY = 86_400_000;
const base = {
  GATEHOUSE_ISSUER: "https://auth.test",
  GATEHOUSE_MASTER_KEY: randomBytes(32).toString("base64"),
  DATABASE_URL: "postgres://127.0.0.1/x",
};
const load = (value: string | undefined) =>
  loadSettings(tokenServiceSettings, { env: { ...base, GATEHOUSE_AUDIT_RETENTION: value } }).auditRetention;

describe("GATEHOUSE_AUDIT_RETENTION", () => {
  it.each([
    [undefined, 400 * DAY],
    ["400d", 400 * DAY],
    ["90d", 90 * DAY],
    ["24h", DAY],
    ["0", 0],
    ["off", 0],
    ["OFF", 0],
    ["never", 0],
  ])("reads %s as %d ms", (value, ms) => {
    expect(load(value)).toBe(ms);
  });

  it.each(["400", "3600", "23h", "-1d", "forty days", "1y"])(
    "refuses %s, naming the variable (a bare number is seconds: too short to be meant)",
    (value) => {
      expect(() => load(value)).toThrow(SettingsError);
      expect(() => load(value)).toThrow(/^GATEHOUSE_AUDIT_RETENTION: /);
    },
  );
});

describe("retentionCutoff", () => {
  it("is the instant retention ago, or null when events are kept forever", () => {
    const now = Date.parse("2026-11-23T12:00:00Z");
    expect(retentionCutoff(now, 400 * DAY)?.toISOString()).toBe("2025-10-19T12:00:00.000Z");
    expect(retentionCutoff(now, 0)).toBeNull();
  });
});
