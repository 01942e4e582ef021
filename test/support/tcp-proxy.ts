import net from "node:net";

export interface TcpProxy {
  /** The port the proxy listens on (kept across stop/start). */
  readonly port: number;
  /** `redis://127.0.0.1:<port>`, for a Redis behind the proxy. */
  readonly url: string;
  /** Refuses new connections and cuts every open one, as if the server behind had died. */
  stop(): Promise<void>;
  /** Listens again on the same port. */
  start(): Promise<void>;
  /** Keeps every connection open but forwards nothing (a half-open network), until `resume`. */
  pause(): void;
  resume(): void;
  readonly running: boolean;
  /** Client connections accepted so far. */
  readonly connections: number;
  /** Client connections open now (each with its connection to the server behind). */
  readonly open: number;
}

/**
 * A TCP proxy on 127.0.0.1 in front of a real server (Redis, usually), so a test can take the server
 * "down" and bring it back without touching the server itself, which other test files share.
 */
export async function startTcpProxy(target: { host?: string; port: number }): Promise<TcpProxy> {
  const host = target.host ?? "127.0.0.1";
  const sockets = new Set<net.Socket>();
  let server: net.Server | undefined;
  let port = 0;
  let paused = false;
  let connections = 0;
  const pairs = new Set<[net.Socket, net.Socket]>();
  const link = (a: net.Socket, b: net.Socket) => {
    a.pipe(b);
    b.pipe(a);
  };

  const listen = () =>
    new Promise<void>((resolve, reject) => {
      const s = net.createServer((client) => {
        connections++;
        const upstream = net.connect({ host, port: target.port });
        for (const sock of [client, upstream]) {
          sockets.add(sock);
          sock.on("close", () => sockets.delete(sock));
          sock.on("error", () => {
            client.destroy();
            upstream.destroy();
          });
        }
        const pair: [net.Socket, net.Socket] = [client, upstream];
        pairs.add(pair);
        if (!paused) link(client, upstream);
        upstream.on("close", () => {
          client.destroy();
          pairs.delete(pair);
        });
        client.on("close", () => upstream.destroy());
      });
      s.once("error", reject);
      s.listen(port, "127.0.0.1", () => {
        s.off("error", reject);
        port = (s.address() as net.AddressInfo).port;
        server = s;
        resolve();
      });
    });

  await listen();
  return {
    get port() {
      return port;
    },
    get url() {
      return `redis://127.0.0.1:${port}`;
    },
    get running() {
      return server !== undefined;
    },
    get connections() {
      return connections;
    },
    get open() {
      return pairs.size;
    },
    pause() {
      paused = true;
      for (const [a, b] of pairs) {
        a.unpipe(b);
        b.unpipe(a);
        a.pause();
        b.pause();
      }
    },
    resume() {
      paused = false;
      for (const [a, b] of pairs) link(a, b);
    },
    async stop() {
      const s = server;
      if (!s) return;
      server = undefined;
      const closed = new Promise<void>((resolve) => s.close(() => resolve()));
      for (const sock of sockets) sock.destroy();
      sockets.clear();
      pairs.clear();
      await closed;
    },
    async start() {
      if (!server) await listen();
    },
  };
}
