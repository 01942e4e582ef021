import { describe, expect, it } from "vitest";
import { redisTargetOf } from "../../services/shared/revocation/redis-target.ts";
import { redisSettings } from "../../services/shared/settings/common-settings.ts";
import { loadSettings, SettingsError } from "../../services/shared/settings/settings.ts";

/** The Redis settings as a process reads them, from environment variables only. */
const targetOf = (env: Record<string, string>) => redisTargetOf(loadSettings(redisSettings, { env }));

const errorOf = (env: Record<string, string>): string => {
  try {
    targetOf(env);
  } catch (err) {
    expect(err).toBeInstanceOf(SettingsError);
    return (err as Error).message;
  }
  throw new Error("expected a SettingsError");
};

const SENTINELS = {
  REDIS_SENTINELS: "10.0.0.1:26379, sentinel-b:26380,[fd00::3]",
  REDIS_SENTINEL_MASTER: "gh",
};

describe("redisTargetOf: REDIS_URL or REDIS_SENTINELS, read once for every Redis user", () => {
  it("is undefined when neither is set (empty counts as unset)", () => {
    expect(targetOf({})).toBeUndefined();
    expect(targetOf({ REDIS_URL: "", REDIS_SENTINELS: "" })).toBeUndefined();
  });

  it("passes REDIS_URL through as written, and names it without its credentials", () => {
    expect(targetOf({ REDIS_URL: "rediss://u:s3cret@redis.internal:6380/2" })).toEqual({
      url: "rediss://u:s3cret@redis.internal:6380/2",
      where: "rediss://redis.internal:6380/2",
    });
  });

  it("turns the sentinel settings into ioredis's Sentinel options, ports defaulting to 26379", () => {
    const target = targetOf({
      ...SENTINELS,
      REDIS_SENTINEL_USERNAME: "watcher",
      REDIS_SENTINEL_PASSWORD: "sentinel-secret",
      REDIS_SENTINEL_TLS: "true",
      REDIS_USERNAME: "gatehouse",
      REDIS_PASSWORD: "data-secret",
      REDIS_TLS: "on",
    });
    expect(target?.url).toBeUndefined();
    expect(target?.redis).toEqual({
      sentinels: [
        { host: "10.0.0.1", port: 26379 },
        { host: "sentinel-b", port: 26380 },
        { host: "fd00::3", port: 26379 },
      ],
      name: "gh",
      role: "master",
      sentinelUsername: "watcher",
      sentinelPassword: "sentinel-secret",
      sentinelTLS: {},
      username: "gatehouse",
      password: "data-secret",
      tls: {},
      enableTLSForSentinelMode: true,
    });
    expect(target?.where).toBe(
      "Sentinel master gh (sentinels 10.0.0.1:26379,sentinel-b:26380,[fd00::3]:26379)",
    );
    expect(target?.where).not.toMatch(/secret/);
  });

  it("sets nothing it was not told: no credentials, no TLS", () => {
    expect(targetOf(SENTINELS)?.redis).toEqual({
      sentinels: [
        { host: "10.0.0.1", port: 26379 },
        { host: "sentinel-b", port: 26380 },
        { host: "fd00::3", port: 26379 },
      ],
      name: "gh",
      role: "master",
    });
  });

  it.each([
    [
      "REDIS_URL beside REDIS_SENTINELS",
      { ...SENTINELS, REDIS_URL: "redis://127.0.0.1:6379" },
      /^REDIS_SENTINELS: is set beside REDIS_URL: set one of them/,
    ],
    [
      "sentinels without a master name",
      { REDIS_SENTINELS: "10.0.0.1" },
      /^REDIS_SENTINEL_MASTER: required with REDIS_SENTINELS/,
    ],
    [
      "a master name without sentinels",
      { REDIS_SENTINEL_MASTER: "gh" },
      /^REDIS_SENTINEL_MASTER: is set but REDIS_SENTINELS is not/,
    ],
    [
      "a sentinel password without sentinels",
      { REDIS_URL: "redis://127.0.0.1", REDIS_SENTINEL_PASSWORD: "x" },
      /^REDIS_SENTINEL_PASSWORD: applies only with REDIS_SENTINELS/,
    ],
    [
      "REDIS_PASSWORD with REDIS_URL",
      { REDIS_URL: "redis://127.0.0.1", REDIS_PASSWORD: "hunter2" },
      /^REDIS_PASSWORD: applies only with REDIS_SENTINELS; with REDIS_URL, credentials go in the URL/,
    ],
    [
      "REDIS_USERNAME alone",
      { REDIS_USERNAME: "gatehouse" },
      /^REDIS_USERNAME: is set but REDIS_SENTINELS is not/,
    ],
    [
      "REDIS_TLS with REDIS_URL",
      { REDIS_URL: "redis://127.0.0.1", REDIS_TLS: "true" },
      /^REDIS_TLS: .*rediss:\/\//,
    ],
    [
      "REDIS_SENTINEL_TLS alone",
      { REDIS_SENTINEL_TLS: "true" },
      /^REDIS_SENTINEL_TLS: is set but REDIS_SENTINELS/,
    ],
    [
      "a sentinel that is not host:port",
      { REDIS_SENTINELS: "10.0.0.1:26379,redis://10.0.0.2", REDIS_SENTINEL_MASTER: "gh" },
      /^REDIS_SENTINELS: expected host:port, got redis:\/\/10\.0\.0\.2/,
    ],
    [
      "a sentinel port out of range",
      { REDIS_SENTINELS: "10.0.0.1:70000", REDIS_SENTINEL_MASTER: "gh" },
      /^REDIS_SENTINELS: expected host:port, got 10\.0\.0\.1:70000/,
    ],
  ])("refuses %s, in one line that names the variable", (_name, env, line) => {
    const message = errorOf(env);
    expect(message).toMatch(line);
    expect(message).not.toContain("\n");
    expect(message).not.toContain("hunter2");
  });

  it("leaves REDIS_TLS=false and REDIS_SENTINEL_TLS=false alone beside REDIS_URL: they are the defaults", () => {
    expect(
      targetOf({ REDIS_URL: "redis://127.0.0.1", REDIS_TLS: "false", REDIS_SENTINEL_TLS: "off" })?.url,
    ).toBe("redis://127.0.0.1");
  });
});
