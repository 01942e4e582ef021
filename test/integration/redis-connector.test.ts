import type { Socket } from "node:net";
import { Redis } from "ioredis";
import { afterEach, describe, expect, it } from "vitest";
import { GuardedConnector } from "../../services/shared/revocation/redis-connector.ts";
import { TEST_REDIS_URL } from "../support/services.ts";

/**
 * redis/ioredis#962: ioredis listens for socket errors with `once`, so a second error on one socket
 * is thrown as unhandled. The control case pins the upstream behaviour: when it stops throwing,
 * ioredis has fixed it and GuardedConnector can go.
 */
const open: Redis[] = [];
const connect = async (options: { Connector?: typeof GuardedConnector }) => {
  const redis = new Redis(TEST_REDIS_URL, { ...options, maxRetriesPerRequest: 0 });
  redis.on("error", () => {});
  open.push(redis);
  await redis.ping();
  return redis;
};
const socketOf = (redis: Redis) => (redis as unknown as { stream: Socket }).stream;

afterEach(() => {
  for (const r of open.splice(0)) r.disconnect();
});

describe("GuardedConnector", () => {
  it("control: plain ioredis throws a socket's second error as unhandled", async () => {
    const socket = socketOf(await connect({}));
    socket.emit("error", new Error("first: handled by ioredis"));
    expect(() => socket.emit("error", new Error("second: nobody listens"))).toThrow(/second/);
  });

  it("keeps listening after the first error, and the connection keeps working", async () => {
    const redis = await connect({ Connector: GuardedConnector });
    const socket = socketOf(redis);
    const seen: string[] = [];
    redis.on("error", (err: Error) => seen.push(err.message));
    socket.emit("error", new Error("first"));
    expect(() => socket.emit("error", new Error("second"))).not.toThrow();
    expect(seen).toEqual(["first"]); // ioredis still reports the first, as before
    expect(await redis.ping()).toBe("PONG");
  });

  it("guards every socket, including those of reconnections", async () => {
    const redis = await connect({ Connector: GuardedConnector });
    const first = socketOf(redis);
    const reconnected = new Promise((r) => redis.once("ready", r));
    first.destroy();
    await reconnected;
    const second = socketOf(redis);
    expect(second).not.toBe(first);
    second.emit("error", new Error("first"));
    expect(() => second.emit("error", new Error("second"))).not.toThrow();
    expect(await redis.ping()).toBe("PONG");
  });
});
