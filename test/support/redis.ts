import { randomBytes } from "node:crypto";
import { Redis } from "ioredis";
import { TEST_REDIS_URL } from "./services.ts";

export interface TestRedis {
  redis: Redis;
  /** Every key this test file writes starts with this prefix, e.g. `t:4f1c2a9e:`. */
  prefix: string;
  url: string;
  /** Deletes every key under the prefix and closes the connection. */
  cleanup(): Promise<void>;
}

/** A Redis connection and a key prefix of the calling test file's own; call `cleanup` in `afterAll`. */
export async function useTestRedis(label = "t"): Promise<TestRedis> {
  const prefix = `${label}:${randomBytes(4).toString("hex")}:`;
  const redis = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: 1 });
  await redis.ping();
  return {
    redis,
    prefix,
    url: TEST_REDIS_URL,
    async cleanup() {
      let cursor = "0";
      do {
        const [next, keys] = await redis.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 500);
        if (keys.length > 0) await redis.del(...keys);
        cursor = next;
      } while (cursor !== "0");
      redis.disconnect();
    },
  };
}
