import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { freePorts } from "../../support/ports.ts";
import { REDIS_SENTINEL_BINARY } from "../../support/services.ts";
import { rememberSecrets } from "./run-directory.ts";
import { type SpawnedProcess, spawnProcess } from "./spawned-process.ts";
import { waitFor } from "./wait.ts";

const MASTER_NAME = "gatehouse-test";
/** The ACL user Gatehouse connects to the data nodes as (REDIS_USERNAME). */
const DATA_USER = "gatehouse";

/** A certificate for 127.0.0.1 and the CA that signed it (may be the same self-signed file). */
export interface PrivateTls {
  certFile: string;
  keyFile: string;
  caFile: string;
}

interface DataNode {
  readonly port: number;
  readonly process: SpawnedProcess;
}

export interface PrivateSentinels {
  readonly nodes: readonly DataNode[];
  readonly sentinelPorts: readonly number[];
  /** REDIS_SENTINELS and the rest, as a Gatehouse process gets them. */
  readonly env: Record<string, string>;
  /** The primary as the sentinels name it now. */
  primaryPort(): Promise<number>;
  /** A connection to one data node, as the default (admin) user. */
  admin(port: number): Redis;
  /** Waits until every sentinel knows the others, the primary and its replica, and the replica is in sync. */
  settled(timeoutMs?: number): Promise<void>;
  /**
   * Stops the primary from replicating to anyone: its replication user is disabled and the link cut,
   * so whatever it accepts from now on exists nowhere else (asynchronous replication, made certain).
   */
  cutReplication(): Promise<void>;
  /** SENTINEL FAILOVER: the primary is demoted and the replica promoted, no writes lost. */
  failover(): Promise<void>;
  /** SIGKILLs the current primary; resolves with its port. */
  killPrimary(): Promise<number>;
  /** Waits until the sentinels name a primary other than `oldPort` and it answers as one. */
  newPrimary(oldPort: number, timeoutMs?: number): Promise<number>;
  destroy(): Promise<void>;
}

/**
 * A primary and a replica (private redis-server processes, nothing on disk) watched by `count`
 * real redis-sentinel processes, all on loopback ports of their own. Passwords everywhere: the data
 * nodes' default user (which the sentinels use), an ACL user for Gatehouse, another for replication,
 * and the sentinels' own; all remembered for the log check. Sentinels call a primary down after
 * 1 s, so a failover takes a few seconds.
 */
export async function startPrivateSentinels(
  count = 3,
  options: { tls?: PrivateTls } = {},
): Promise<PrivateSentinels> {
  const dir = mkdtempSync(join(tmpdir(), "gatehouse-sentinel-"));
  const tls = options.tls;
  // With TLS every process listens for TLS only (port 0 turns plain TCP off) and replicates over it.
  const tlsArgs = (port: number) =>
    tls
      ? [
          "--port",
          "0",
          "--tls-port",
          String(port),
          "--tls-replication",
          "yes",
          "--tls-auth-clients",
          "no",
        ].concat([
          "--tls-cert-file",
          tls.certFile,
          "--tls-key-file",
          tls.keyFile,
          "--tls-ca-cert-file",
          tls.caFile,
        ])
      : ["--port", String(port)];
  const clientTls = tls ? { tls: { ca: readFileSync(tls.caFile) } } : {};
  const secret = () => randomBytes(12).toString("hex");
  const adminPassword = secret();
  const dataPassword = secret();
  const replicationPassword = secret();
  const sentinelPassword = secret();
  rememberSecrets(adminPassword, dataPassword, replicationPassword, sentinelPassword);
  const ports = await freePorts(2 + count);
  const [primary, replica] = ports as [number, number];
  const sentinelPorts = ports.slice(2);
  const clients: Redis[] = [];
  const track = (r: Redis) => {
    r.on("error", () => {});
    clients.push(r);
    return r;
  };
  const admin = (port: number) =>
    track(
      new Redis({ port, host: "127.0.0.1", password: adminPassword, maxRetriesPerRequest: 1, ...clientTls }),
    );
  const sentinel = (port: number) =>
    track(
      new Redis({
        port,
        host: "127.0.0.1",
        password: sentinelPassword,
        maxRetriesPerRequest: 1,
        enableReadyCheck: false,
        ...clientTls,
      }),
    );

  const dataNode = (port: number, replicaOf?: number): DataNode => {
    const args = [
      ...tlsArgs(port),
      ...["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
      ...["--dir", dir, "--dbfilename", `dump-${port}.rdb`, "--requirepass", adminPassword],
      ...["--user", DATA_USER, "on", `>${dataPassword}`, "~*", "&*", "+@all"],
      ...["--user", "replicator", "on", `>${replicationPassword}`, "+psync", "+replconf", "+ping", "+sync"],
      ...["--masteruser", "replicator", "--masterauth", replicationPassword],
      ...(replicaOf === undefined ? [] : ["--replicaof", "127.0.0.1", String(replicaOf)]),
    ];
    return { port, process: spawnProcess(`sentinel-redis-${port}`, "redis-server", args) };
  };
  const nodes = [dataNode(primary), dataNode(replica, primary)];
  const sentinels = sentinelPorts.map((port) => {
    const conf = join(dir, `sentinel-${port}.conf`);
    writeFileSync(
      conf,
      [
        ...(tls
          ? ["port 0", `tls-port ${port}`, "tls-replication yes", "tls-auth-clients no"].concat([
              `tls-cert-file ${tls.certFile}`,
              `tls-key-file ${tls.keyFile}`,
              `tls-ca-cert-file ${tls.caFile}`,
            ])
          : [`port ${port}`]),
        "bind 127.0.0.1",
        `dir ${dir}`,
        `sentinel monitor ${MASTER_NAME} 127.0.0.1 ${primary} ${Math.floor(count / 2) + 1}`,
        `sentinel auth-pass ${MASTER_NAME} ${adminPassword}`,
        `sentinel down-after-milliseconds ${MASTER_NAME} 1000`,
        `sentinel failover-timeout ${MASTER_NAME} 5000`,
        `sentinel parallel-syncs ${MASTER_NAME} 1`,
        `requirepass ${sentinelPassword}`,
        `sentinel sentinel-pass ${sentinelPassword}`,
        "",
      ].join("\n"),
      { mode: 0o600 },
    );
    return spawnProcess(`redis-sentinel-${port}`, REDIS_SENTINEL_BINARY, [conf]);
  });
  const everything = [...nodes.map((n) => n.process), ...sentinels];

  const destroy = async () => {
    for (const c of clients) c.disconnect();
    await Promise.all(everything.map((p) => p.stop(3000)));
    rmSync(dir, { recursive: true, force: true });
  };

  const askSentinels = async <T>(fn: (s: Redis) => Promise<T>): Promise<T[]> => {
    const out: T[] = [];
    for (const port of sentinelPorts) {
      const s = sentinel(port);
      try {
        out.push(await fn(s));
      } finally {
        s.disconnect();
      }
    }
    return out;
  };
  const primaryPort = async () => {
    const s = sentinel(sentinelPorts[0]!);
    try {
      const addr = (await s.call("SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME)) as [string, string];
      return Number(addr[1]);
    } finally {
      s.disconnect();
    }
  };
  const roleOf = async (port: number) => {
    const r = admin(port);
    try {
      return String(((await r.call("ROLE")) as unknown[])[0]);
    } finally {
      r.disconnect();
    }
  };

  try {
    await waitFor(
      "the primary, the replica and the sentinels to answer",
      async () => {
        for (const p of everything) if (!p.running) throw new Error(`${p.name} exited: ${p.tail()}`);
        return (await roleOf(primary)) === "master" && (await roleOf(replica)) === "slave";
      },
      { timeoutMs: 20_000 },
    );
  } catch (err) {
    await destroy();
    throw err;
  }

  const group: PrivateSentinels = {
    nodes,
    sentinelPorts,
    env: {
      REDIS_SENTINELS: sentinelPorts.map((p) => `127.0.0.1:${p}`).join(","),
      REDIS_SENTINEL_MASTER: MASTER_NAME,
      REDIS_SENTINEL_PASSWORD: sentinelPassword,
      REDIS_USERNAME: DATA_USER,
      REDIS_PASSWORD: dataPassword,
    },
    primaryPort,
    admin,
    async settled(timeoutMs = 30_000) {
      await waitFor(
        `${count} sentinels to agree on a primary with a replica in sync`,
        async () => {
          const views = await askSentinels(async (s) => {
            const master = pairs((await s.call("SENTINEL", "MASTER", MASTER_NAME)) as string[]);
            const replicas = ((await s.call("SENTINEL", "REPLICAS", MASTER_NAME)) as string[][]).map(pairs);
            return { master, replicas };
          });
          return views.every(
            ({ master, replicas }) =>
              master.flags === "master" &&
              Number(master["num-other-sentinels"]) === count - 1 &&
              replicas.some((r) => r.flags === "slave" && r["master-link-status"] === "ok"),
          );
        },
        { timeoutMs, intervalMs: 250 },
      );
    },
    async cutReplication() {
      const r = admin(await primaryPort());
      try {
        await r.call("ACL", "SETUSER", "replicator", "off");
        await r.call("CLIENT", "KILL", "USER", "replicator");
      } finally {
        r.disconnect();
      }
    },
    async failover() {
      const s = sentinel(sentinelPorts[0]!);
      try {
        await s.call("SENTINEL", "FAILOVER", MASTER_NAME);
      } finally {
        s.disconnect();
      }
    },
    async killPrimary() {
      const port = await primaryPort();
      const node = nodes.find((n) => n.port === port)!;
      node.process.kill("SIGKILL");
      await node.process.exited;
      return port;
    },
    newPrimary(oldPort, timeoutMs = 30_000) {
      return waitFor(
        `the sentinels to promote a primary other than :${oldPort}`,
        async () => {
          const ports = await askSentinels(async (s) => {
            const addr = (await s.call("SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME)) as [
              string,
              string,
            ];
            return Number(addr[1]);
          });
          const port = ports[0]!;
          if (port === oldPort || ports.some((p) => p !== port)) return undefined;
          return (await roleOf(port)) === "master" ? port : undefined;
        },
        { timeoutMs, intervalMs: 100 },
      );
    },
    destroy,
  };
  return group;
}

/** A flat [key, value, key, value...] reply as an object. */
function pairs(flat: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) out[flat[i]!] = flat[i + 1]!;
  return out;
}
