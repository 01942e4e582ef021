import { Redis } from "ioredis";
import { freePort } from "../../support/ports.ts";
import { type SpawnedProcess, spawnProcess } from "./spawned-process.ts";
import { waitFor } from "./wait.ts";

export interface PrivateRedis {
  readonly port: number;
  readonly url: string;
  /** Kills the server and starts a fresh one on the same port: nothing on disk, so it comes back empty. */
  restart(downMs?: number): Promise<void>;
  stop(): Promise<void>;
  start(): Promise<void>;
  /** FLUSHALL: safe here, nobody else uses this server. */
  flushAll(): Promise<void>;
  /** A connection for the test's own reads (XLEN etc.). */
  client(): Redis;
  destroy(): Promise<void>;
}

/**
 * A redis-server of our own on a free loopback port, with no persistence, so a scenario can restart
 * and FLUSHALL it without touching the shared Redis.
 */
export async function startPrivateRedis(): Promise<PrivateRedis> {
  const port = await freePort();
  const url = `redis://127.0.0.1:${port}`;
  let proc: SpawnedProcess | undefined;
  const clients: Redis[] = [];
  const ping = async () => {
    const r = new Redis(url, {
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      connectTimeout: 1000,
      retryStrategy: () => null,
    });
    r.on("error", () => {});
    try {
      await r.connect();
      return (await r.ping()) === "PONG";
    } finally {
      r.disconnect();
    }
  };
  const start = async () => {
    proc = spawnProcess("private-redis", "redis-server", [
      "--port",
      String(port),
      "--bind",
      "127.0.0.1",
      "--save",
      "",
      "--appendonly",
      "no",
      "--daemonize",
      "no",
    ]);
    const started = proc;
    await waitFor(`redis-server on :${port}`, async () => {
      if (!started.running) throw new Error(`redis-server exited: ${started.tail()}`);
      return ping();
    });
  };
  const stop = async () => {
    await proc?.stop(3000);
  };
  await start();
  return {
    port,
    url,
    async restart(downMs = 0) {
      proc?.kill("SIGKILL");
      await proc?.exited;
      if (downMs > 0) await new Promise((r) => setTimeout(r, downMs));
      await start();
    },
    stop,
    start,
    async flushAll() {
      const r = new Redis(url, { maxRetriesPerRequest: 1 });
      try {
        await r.flushall();
      } finally {
        r.disconnect();
      }
    },
    client() {
      const r = new Redis(url, { maxRetriesPerRequest: 1 });
      r.on("error", () => {});
      clients.push(r);
      return r;
    },
    async destroy() {
      for (const c of clients) c.disconnect();
      await stop();
    },
  };
}
