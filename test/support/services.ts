import net from "node:net";

/** Where the integration tests find the real Postgres and Redis on this machine. */
export const TEST_DATABASE_URL = process.env.TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";
export const TEST_REDIS_URL = process.env.TEST_REDIS_URL ?? "redis://127.0.0.1:6379";

export const HOW_TO_START = {
  postgres: "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
  redis:
    'redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log',
  nginx: "apt-get install -y nginx",
  pgbouncer: "apt-get install -y pgbouncer",
  redisSentinel: "apt-get install -y redis-sentinel",
};

/** The Debian package's Sentinel (the reliability suite's failover scenario runs three of its own). */
export const REDIS_SENTINEL_BINARY = "/usr/bin/redis-sentinel";

/** Opens a TCP connection to the URL's host and port; resolves with an error text, or null when reachable. */
export function probe(urlText: string, defaultPort: number, timeoutMs = 2000): Promise<string | null> {
  const url = new URL(urlText);
  const host = url.hostname.replace(/^\[(.*)\]$/, "$1") || "127.0.0.1";
  const port = Number(url.port || defaultPort);
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (error: string | null) => {
      socket.destroy();
      resolve(error);
    };
    socket.setTimeout(timeoutMs, () => done(`no answer from ${host}:${port} within ${timeoutMs} ms`));
    socket.once("connect", () => done(null));
    socket.once("error", (err) => done(`${host}:${port}: ${err.message}`));
  });
}
