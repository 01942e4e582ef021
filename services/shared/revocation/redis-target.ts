import type { RedisOptions } from "ioredis";
import type { redisSettings } from "../settings/common-settings.ts";
import { SettingsError, type SettingsOf } from "../settings/settings.ts";

/** The Redis settings every process kind that connects to Redis reads (REDIS_URL, REDIS_SENTINELS...). */
export type RedisSettings = Partial<SettingsOf<typeof redisSettings>>;

/** Where the revocation stream lives, in the two fields {@link createRedisBus} takes. */
export interface RedisTarget {
  /** REDIS_URL, as written: one Redis, credentials and TLS in the URL. */
  url?: string;
  /** Behind Sentinel: the sentinels, master name and both sides' credentials and TLS, as ioredis takes them. */
  redis?: RedisOptions;
  /** Where it is, for logs and banners: never a credential. */
  where: string;
}

/** The settings that only mean something beside REDIS_SENTINELS, by variable name. */
const SENTINEL_ONLY = {
  REDIS_SENTINEL_MASTER: (s: RedisSettings) => s.redisSentinelMaster !== undefined,
  REDIS_SENTINEL_USERNAME: (s: RedisSettings) => s.redisSentinelUsername !== undefined,
  REDIS_SENTINEL_PASSWORD: (s: RedisSettings) => s.redisSentinelPassword !== undefined,
  REDIS_SENTINEL_TLS: (s: RedisSettings) => s.redisSentinelTls === true,
  REDIS_USERNAME: (s: RedisSettings) => s.redisUsername !== undefined,
  REDIS_PASSWORD: (s: RedisSettings) => s.redisPassword !== undefined,
  REDIS_TLS: (s: RedisSettings) => s.redisTls === true,
} as const;

/**
 * The one reading of the Redis settings every Redis user goes through: the token service's relay, the
 * sidecar's stream follower, `gatehouse dev` and the CLI's revocation check. Undefined when no Redis
 * is configured. Throws {@link SettingsError} (one line, exit 2) for settings that contradict or
 * would be ignored: REDIS_URL beside REDIS_SENTINELS, sentinels without a master name, and a
 * sentinel-side setting without sentinels (REDIS_URL carries its own credentials and TLS).
 */
export function redisTargetOf(s: RedisSettings): RedisTarget | undefined {
  const sentinels = s.redisSentinels ?? [];
  const url = s.redisUrl === "" ? undefined : s.redisUrl;
  if (sentinels.length === 0) {
    for (const [name, isSet] of Object.entries(SENTINEL_ONLY)) {
      if (!isSet(s)) continue;
      throw new SettingsError(
        name,
        url === undefined
          ? "is set but REDIS_SENTINELS is not: it applies only behind Sentinel"
          : "applies only with REDIS_SENTINELS; with REDIS_URL, credentials go in the URL (redis://user:password@host) and TLS in its scheme (rediss://)",
      );
    }
    return url === undefined ? undefined : { url, where: withoutCredentials(url) };
  }
  if (url !== undefined) {
    throw new SettingsError(
      "REDIS_SENTINELS",
      "is set beside REDIS_URL: set one of them (REDIS_URL for one Redis, REDIS_SENTINELS to find the primary through Sentinel)",
    );
  }
  const master = s.redisSentinelMaster;
  if (master === undefined) {
    throw new SettingsError(
      "REDIS_SENTINEL_MASTER",
      "required with REDIS_SENTINELS: the master name the sentinels monitor",
    );
  }
  const redis: RedisOptions = {
    sentinels,
    name: master,
    role: "master",
    ...(s.redisSentinelUsername !== undefined && { sentinelUsername: s.redisSentinelUsername }),
    ...(s.redisSentinelPassword !== undefined && { sentinelPassword: s.redisSentinelPassword }),
    ...(s.redisSentinelTls && { sentinelTLS: {} }),
    ...(s.redisUsername !== undefined && { username: s.redisUsername }),
    ...(s.redisPassword !== undefined && { password: s.redisPassword }),
    // ioredis speaks TLS to the node a sentinel names only with both of these.
    ...(s.redisTls && { tls: {}, enableTLSForSentinelMode: true }),
  };
  const list = sentinels.map((a) => (a.host.includes(":") ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`));
  return { redis, where: `Sentinel master ${master} (sentinels ${list.join(",")})` };
}

function withoutCredentials(url: string): string {
  const u = new URL(url);
  u.username = "";
  u.password = "";
  return u.toString().replace(/\/$/, "");
}
