import { createHash } from "node:crypto";
import { Redis, type RedisOptions } from "ioredis";
import { backoffDelay } from "./backoff.ts";
import { GuardedConnector, GuardedSentinelConnector } from "./redis-connector.ts";
import { createRangeReader, type RangeReader } from "./redis-range-reader.ts";
import { abortError, type BusEntry, type RevocationBus, type StreamInfo } from "./revocation-bus.ts";

/** The part of a pino logger the bus uses. */
interface BusLogger {
  warn(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
}

export interface RedisBusOptions {
  /** `redis://` or `rediss://` URL; unset behind Sentinel (`redis.sentinels`, see redis-target.ts). */
  url?: string | undefined;
  /** Connection name shown by CLIENT LIST. Default `gatehouse`. */
  name?: string;
  /** A command (not a blocking read) fails after this long. Default 2000 ms. */
  commandTimeoutMs?: number;
  /** A connection attempt fails after this long. Default 2000 ms. */
  connectTimeoutMs?: number;
  /** Reconnect delay: doubles from `minMs` up to `maxMs`, with jitter. Default 50 ms and 2 s. */
  reconnect?: { minMs?: number; maxMs?: number };
  /**
   * A blocking read that has not answered `blockMs` plus this long is taken for a dead connection:
   * the read rejects and its connection is replaced. Default 2000 ms.
   */
  readGraceMs?: number;
  logger?: BusLogger;
  /** Extra ioredis options (TLS, Sentinel...), applied last. */
  redis?: RedisOptions;
}

/**
 * Appends in one atomic script: checks the stream is intact (exists, last-generated-id not behind
 * the caller's) when asked, then XADDs every entry. ARGV: expected id or '', then per entry its field
 * count and fields.
 */
const APPEND = `
local expect = ARGV[1]
if expect ~= '' then
  if redis.call('EXISTS', KEYS[1]) == 0 then return false end
  local info = redis.call('XINFO', 'STREAM', KEYS[1])
  local last = '0-0'
  for i = 1, #info, 2 do
    if info[i] == 'last-generated-id' then last = info[i + 1] break end
  end
  local lms, lseq = string.match(last, '^(%d+)-(%d+)$')
  local ems, eseq = string.match(expect, '^(%d+)-(%d+)$')
  lms, lseq, ems, eseq = tonumber(lms), tonumber(lseq), tonumber(ems), tonumber(eseq)
  if lms < ems or (lms == ems and lseq < eseq) then return false end
end
local ids = {}
local i = 2
while i <= #ARGV do
  local n = tonumber(ARGV[i])
  local args = { 'XADD', KEYS[1], '*' }
  for j = 1, n do args[#args + 1] = ARGV[i + j] end
  ids[#ids + 1] = redis.call(unpack(args))
  i = i + n + 1
end
return ids`;

/** MINID trimming on Redis's own clock (TIME), so a skewed client clock cannot trim too much. */
const TRIM = `
local t = redis.call('TIME')
local minms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - tonumber(ARGV[1])
if minms <= 0 then return 0 end
return redis.call('XTRIM', KEYS[1], 'MINID', string.format('%.0f', minms))`;

const sha1 = (text: string) => createHash("sha1").update(text).digest("hex");
const SCRIPTS = { append: { text: APPEND, sha: sha1(APPEND) }, trim: { text: TRIM, sha: sha1(TRIM) } };

type RawEntry = [string, string[]];
const toEntry = ([id, fields]: RawEntry): BusEntry => ({ id, fields });

/**
 * A {@link RevocationBus} on Redis streams through ioredis. Commands fail at once while Redis is
 * unreachable (no offline queue, no retries per request) and the connection reconnects in the
 * background with backoff and jitter. Blocking reads run on a second connection of their own, opened
 * on first use, so one bus serves one reader at a time. Ranges (the bootstrap) run on a third,
 * opened for them and closed when idle, with a reader of their own (see redis-range-reader.ts),
 * except behind Sentinel or a custom connector, where they stay on ioredis.
 */
export function createRedisBus(options: RedisBusOptions): RevocationBus {
  const minMs = options.reconnect?.minMs ?? 50;
  const maxMs = options.reconnect?.maxMs ?? 2000;
  const connectTimeout = options.connectTimeoutMs ?? 2000;
  const readGraceMs = options.readGraceMs ?? 2000;
  const base: RedisOptions = {
    connectionName: options.name ?? "gatehouse",
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    connectTimeout,
    retryStrategy: (times) => backoffDelay(times, minMs, maxMs),
    ...options.redis,
  };
  const commandTimeoutMs = options.commandTimeoutMs ?? 2000;
  if (base.sentinels && base.sentinels.length > 0) {
    // Behind Sentinel ioredis asks the sentinels where the primary is on every (re)connect, and
    // checks the node it reached is still the primary.
    base.Connector ??= GuardedSentinelConnector;
    base.sentinelCommandTimeout ??= commandTimeoutMs;
  } else if (options.url === undefined) {
    throw new TypeError("createRedisBus needs a url or redis.sentinels");
  } else {
    base.Connector ??= GuardedConnector;
  }
  const open = (role: string, extra: RedisOptions) => {
    const conn = options.url
      ? new Redis(options.url, { ...base, ...extra })
      : new Redis({ ...base, ...extra });
    let down = false;
    conn.on("error", (err: Error) => {
      if (down) return;
      down = true;
      options.logger?.warn({ role, err: err.message }, "redis unreachable; reconnecting");
    });
    conn.on("ready", () => {
      if (down) options.logger?.info({ role }, "redis reconnected");
      down = false;
    });
    return conn;
  };
  const commands = open("commands", { commandTimeout: commandTimeoutMs });
  const rangeReader = directRangeReader(commands.options, connectTimeout, commandTimeoutMs);
  let reader: Redis | undefined;
  let closed = false;

  const ready = async (conn: Redis) => {
    if (closed) throw new Error("bus closed");
    if (conn.status !== "ready") await whenReady(conn, connectTimeout);
    return conn;
  };
  const script = async (which: keyof typeof SCRIPTS, key: string, args: (string | number)[]) => {
    const conn = await ready(commands);
    const s = SCRIPTS[which];
    try {
      return await conn.evalsha(s.sha, 1, key, ...args);
    } catch (err) {
      if (!String((err as Error).message).startsWith("NOSCRIPT")) throw err;
      return conn.eval(s.text, 1, key, ...args);
    }
  };
  const dropReader = () => {
    reader?.disconnect();
    reader = undefined;
  };
  // Blocking reads are watched by one timer per bus, not one per read: a read that outlives its
  // deadline is on a dead connection, which is dropped (the read then rejects).
  let readDeadline: number | undefined;
  let watchdog: NodeJS.Timeout | undefined;
  let timedOut: Redis | undefined;
  const checkDeadline = () => {
    if (readDeadline === undefined || Date.now() < readDeadline || !reader) return;
    timedOut = reader;
    dropReader();
  };
  /** Abort signals already wired to drop the reader: one listener per signal, not per read. */
  const hooked = new WeakSet<AbortSignal>();

  return {
    async append(stream, entries, opts = {}) {
      const args: (string | number)[] = [opts.ifIntactSince ?? ""];
      for (const fields of entries) args.push(fields.length, ...fields);
      const ids = (await script("append", stream, args)) as string[] | null;
      return ids ?? null;
    },

    async range(stream, afterId, count) {
      if (closed) throw new Error("bus closed");
      if (rangeReader) return rangeReader.range(stream, afterId, count);
      const conn = await ready(commands);
      const raw = (await conn.xrange(stream, `(${afterId}`, "+", "COUNT", count)) as RawEntry[];
      return raw.map(toEntry);
    },

    async read(stream, afterId, { blockMs, count, signal }) {
      if (signal?.aborted) throw abortError();
      reader ??= open("reader", {});
      const conn =
        reader.status === "ready" && !closed
          ? reader
          : await ready(reader).catch((err: unknown) => {
              // A handshake that never finishes is a silent network too: dial afresh next time.
              if (reader?.status === "connect" || reader?.status === "connecting") dropReader();
              throw err;
            });
      if (signal && !hooked.has(signal)) {
        hooked.add(signal);
        signal.addEventListener("abort", () => dropReader(), { once: true });
      }
      if (signal?.aborted) throw abortError();
      readDeadline = Date.now() + blockMs + readGraceMs;
      watchdog ??= setInterval(checkDeadline, 500).unref();
      try {
        const reply = (await conn.xread("COUNT", count, "BLOCK", blockMs, "STREAMS", stream, afterId)) as
          | [string, RawEntry[]][]
          | null;
        const entries = reply?.[0]?.[1] ?? [];
        return entries.map(toEntry);
      } catch (err) {
        if (signal?.aborted) throw abortError();
        if (timedOut === conn)
          throw new Error(`redis read gave no answer within ${blockMs + readGraceMs} ms`);
        throw err;
      } finally {
        readDeadline = undefined;
      }
    },

    async info(stream): Promise<StreamInfo | null> {
      const conn = await ready(commands);
      let info: unknown[];
      try {
        info = (await conn.xinfo("STREAM", stream)) as unknown[];
      } catch (err) {
        if (/no such key/i.test((err as Error).message)) return null;
        throw err;
      }
      const field = (name: string) => {
        for (let i = 0; i + 1 < info.length; i += 2) if (info[i] === name) return info[i + 1];
        return undefined;
      };
      return {
        lastGeneratedId: String(field("last-generated-id") ?? "0-0"),
        length: Number(field("length") ?? 0),
      };
    },

    async trim(stream, maxAgeMs) {
      return Number(await script("trim", stream, [Math.max(0, Math.floor(maxAgeMs))]));
    },

    async close() {
      if (closed) return;
      closed = true;
      if (watchdog) clearInterval(watchdog);
      dropReader();
      rangeReader?.close();
      commands.disconnect();
    },
  };
}

/** A {@link RangeReader} on the connection ioredis would open, or undefined where ioredis must find the server itself. */
function directRangeReader(
  o: RedisOptions,
  connectTimeoutMs: number,
  commandTimeoutMs: number,
): RangeReader | undefined {
  if (o.Connector !== GuardedConnector) return undefined;
  return createRangeReader({
    // ioredis leaves unset fields null, not undefined.
    connection: {
      host: o.host ?? undefined,
      port: o.port ?? undefined,
      path: o.path ?? undefined,
      family: o.family || undefined,
      tls: o.tls ?? undefined,
      username: o.username ?? undefined,
      password: o.password ?? undefined,
      db: o.db ?? undefined,
      keyPrefix: o.keyPrefix ?? undefined,
    },
    name: `${o.connectionName ?? "gatehouse"}:range`,
    connectTimeoutMs,
    commandTimeoutMs,
  });
}

/** Resolves when the connection is ready; rejects at once when it is known down. */
function whenReady(conn: Redis, timeoutMs: number): Promise<void> {
  const status = conn.status;
  if (status === "ready") return Promise.resolve();
  if (status === "reconnecting" || status === "close" || status === "end") {
    return Promise.reject(new Error(`redis unreachable (${status})`));
  }
  if (status === "wait") conn.connect().catch(() => {});
  return new Promise((resolve, reject) => {
    const done = (err?: Error) => {
      clearTimeout(timer);
      conn.off("ready", onReady);
      conn.off("error", onError);
      conn.off("close", onClose);
      if (err) reject(err);
      else resolve();
    };
    const onReady = () => done();
    const onError = (err: Error) => done(new Error(`redis unreachable: ${err.message}`));
    const onClose = () => done(new Error("redis unreachable (closed)"));
    const timer = setTimeout(() => done(new Error(`redis not ready within ${timeoutMs} ms`)), timeoutMs);
    conn.on("ready", onReady);
    conn.on("error", onError);
    conn.on("close", onClose);
  });
}
