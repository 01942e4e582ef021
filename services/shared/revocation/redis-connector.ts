import { connect as netConnect, type Socket } from "node:net";
import { type ConnectionOptions, connect as tlsConnect } from "node:tls";
import { AbstractConnector, SentinelConnector, type StandaloneConnectionOptions } from "ioredis";
import type { NetStream } from "ioredis/built/types.js";

/** Where a Redis server is, in the fields of ioredis's own parsed options. */
export interface RedisSocketOptions {
  host?: string | undefined;
  port?: number | undefined;
  /** Unix socket path; wins over host and port. */
  path?: string | undefined;
  family?: number | undefined;
  /** Present for `rediss://`: passed to `tls.connect` as it is. */
  tls?: ConnectionOptions | undefined;
}

/** Opens a socket to Redis exactly as ioredis's StandaloneConnector does (TLS or not, TCP or unix). */
export function openRedisSocket(o: RedisSocketOptions): Socket {
  const target = o.path
    ? { path: o.path }
    : {
        host: o.host ?? "127.0.0.1",
        port: o.port ?? 6379,
        ...(o.family !== undefined && o.family !== null && { family: o.family }),
      };
  return o.tls ? tlsConnect({ ...target, ...o.tls }) : netConnect(target);
}

/**
 * ioredis's standalone connector, with an error listener that stays on every socket it opens.
 *
 * ioredis listens for a socket's errors with `once`: a second error on the same socket has no
 * listener, and Node throws it, ending the process. A refused TLS handshake does exactly that (the
 * certificate is refused, then the server's alert arrives as another error): it ended three of
 * four runs of the TLS case in test/integration/redis-range-reader.test.ts before this guard.
 * Reported upstream as redis/ioredis#962, closed without a fix; redis-connector.test.ts pins it. For a sidecar that would turn a Redis failover into a crash of every pod's guard.
 * ioredis has acted on the first error (the connection closes and reconnects), so later ones are
 * dropped. Built on the exported AbstractConnector, as ioredis's StandaloneConnector is (which is
 * not exported).
 */
export class GuardedConnector extends AbstractConnector {
  private readonly options: StandaloneConnectionOptions;

  // ioredis types a Connector's options as unknown; it passes the Redis instance's own options.
  constructor(options: unknown) {
    const o = options as StandaloneConnectionOptions;
    super(o.disconnectTimeout ?? 2000);
    this.options = o;
  }

  connect(): Promise<NetStream> {
    this.connecting = true;
    return new Promise((resolve, reject) => {
      // As ioredis does: the caller attaches its handlers before the socket can emit anything.
      process.nextTick(() => {
        if (!this.connecting) {
          reject(new Error("Connection is closed."));
          return;
        }
        let stream: Socket;
        try {
          stream = openRedisSocket(this.options);
        } catch (err) {
          reject(err);
          return;
        }
        this.stream = stream;
        stream.once("error", (err: Error) => {
          this.firstError = err;
        });
        stream.on("error", ignore);
        resolve(stream);
      });
    });
  }
}

/**
 * ioredis's Sentinel connector with the same guard as {@link GuardedConnector}: it asks the sentinels
 * for the primary and opens the socket with the same `once` listener, so a refused TLS handshake to
 * the node a sentinel named would end the process the same way, during exactly the failover it is
 * there to survive. The socket it resolves with is the one it opened; the guard goes on before any
 * I/O can emit a second error.
 */
export class GuardedSentinelConnector extends SentinelConnector {
  // ioredis types a Connector's options as unknown; it passes the Redis instance's own options.
  constructor(options: unknown) {
    super(options as ConstructorParameters<typeof SentinelConnector>[0]);
  }

  override async connect(eventEmitter: Parameters<SentinelConnector["connect"]>[0]): Promise<NetStream> {
    const stream = await super.connect(eventEmitter);
    stream.on("error", ignore);
    return stream;
  }
}

function ignore(): void {}
