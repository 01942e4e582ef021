import type { Socket } from "node:net";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { redisSettings } from "../../services/shared/config/common-settings.ts";
import { loadSettings } from "../../services/shared/config/settings.ts";
import { createRedisBus } from "../../services/shared/revocation/redis-bus.ts";
import { GuardedSentinelConnector } from "../../services/shared/revocation/redis-connector.ts";
import { redisTargetOf } from "../../services/shared/revocation/redis-target.ts";
import { type PrivateSentinels, startPrivateSentinels } from "../reliability/support/private-sentinel.ts";

/**
 * The bus behind a real redis-sentinel (one sentinel, a primary and a replica, passwords and an ACL
 * user on both sides), built from the settings exactly as `gatehouse serve` and `gatehouse sidecar`
 * build it. The failover itself, with processes, is test/reliability/redis-sentinel-failover.test.ts.
 */

let group: PrivateSentinels;

beforeAll(async () => {
  group = await startPrivateSentinels(1);
  await group.settled();
}, 60_000);

afterAll(() => group?.destroy());

const busFrom = (env: Record<string, string>) => {
  const target = redisTargetOf(loadSettings(redisSettings, { env }));
  if (!target) throw new Error("no Redis target");
  return createRedisBus({
    url: target.url,
    redis: target.redis,
    name: "sentinel-test",
    connectTimeoutMs: 1000,
    reconnect: { minMs: 20, maxMs: 200 },
  });
};

describe("the revocation bus behind Sentinel", () => {
  it("appends, reads, ranges and trims on the primary the sentinel names, as the ACL user", async () => {
    const bus = busFrom(group.env);
    const stream = `sentinel-test:${Date.now()}`;
    try {
      const ids = await bus.append(stream, [
        ["e", "one"],
        ["e", "two"],
      ]);
      expect(ids).toHaveLength(2);
      expect((await bus.range(stream, "0-0", 10)).map((e) => e.fields)).toEqual([
        ["e", "one"],
        ["e", "two"],
      ]);
      expect(await bus.read(stream, ids![0]!, { blockMs: 100, count: 10 })).toEqual([
        { id: ids![1], fields: ["e", "two"] },
      ]);
      expect(await bus.info(stream)).toEqual({ lastGeneratedId: ids![1], length: 2 });
      // It went to the primary: the entries are there, written by the user REDIS_USERNAME names.
      const primary = group.admin(await group.primaryPort());
      expect(await primary.xlen(stream)).toBe(2);
      const clients = String(await primary.call("CLIENT", "LIST"));
      expect(clients).toMatch(/name=sentinel-test .*user=gatehouse/);
    } finally {
      await bus.close();
    }
  });

  it.each([
    ["a wrong sentinel password", { REDIS_SENTINEL_PASSWORD: "wrong" }],
    ["a wrong data-node password", { REDIS_PASSWORD: "wrong" }],
    ["an unknown master name", { REDIS_SENTINEL_MASTER: "nobody" }],
  ])("fails its commands, never hangs, with %s", async (_name, override) => {
    const bus = busFrom({ ...group.env, ...override });
    try {
      await expect(bus.info("sentinel-test:any")).rejects.toThrow(/redis/i);
    } finally {
      await bus.close();
    }
  });

  it("control: ioredis's own Sentinel connector throws a socket's second error as unhandled", async () => {
    const target = redisTargetOf(loadSettings(redisSettings, { env: group.env }))!;
    const redis = new Redis({ ...target.redis, maxRetriesPerRequest: 0 });
    redis.on("error", () => {});
    try {
      expect(await redis.ping()).toBe("PONG");
      const socket = (redis as unknown as { stream: Socket }).stream;
      socket.emit("error", new Error("first: handled by ioredis"));
      expect(() => socket.emit("error", new Error("second: nobody listens"))).toThrow(/second/);
    } finally {
      redis.disconnect();
    }
  });

  it("guards the sockets it opens: a second error on one is not thrown (redis/ioredis#962)", async () => {
    const target = redisTargetOf(loadSettings(redisSettings, { env: group.env }))!;
    const redis = new Redis({
      ...target.redis,
      Connector: GuardedSentinelConnector,
      maxRetriesPerRequest: 0,
    });
    redis.on("error", () => {});
    try {
      expect(await redis.ping()).toBe("PONG");
      const socket = (redis as unknown as { stream: Socket }).stream;
      expect(socket.remotePort).toBe(await group.primaryPort());
      socket.emit("error", new Error("first"));
      expect(() => socket.emit("error", new Error("second"))).not.toThrow();
    } finally {
      redis.disconnect();
    }
  });
});
