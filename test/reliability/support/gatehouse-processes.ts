import { fileURLToPath } from "node:url";
import { freePorts } from "../../support/ports.ts";
import { rememberSecrets } from "./run-directory.ts";
import { type Exit, type SpawnedProcess, spawnProcess } from "./spawned-process.ts";
import { httpStatus, waitFor } from "./wait.ts";

const BIN = fileURLToPath(new URL("../../../bin/gatehouse.mjs", import.meta.url));
export const ISSUER = "https://auth.reliability.test";

/** The environment every Gatehouse process gets: nothing of the test worker's but PATH and HOME. */
function baseEnv(extra: Record<string, string | undefined>): NodeJS.ProcessEnv {
  const env: Record<string, string | undefined> = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    // debug, so the log check sees as much of what the processes say as possible
    GATEHOUSE_LOG_LEVEL: "debug",
    GATEHOUSE_LOG_PRETTY: "false",
    GATEHOUSE_ISSUER: ISSUER,
    GATEHOUSE_SHUTDOWN_GRACE: "1s",
    ...extra,
  };
  return Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined)) as NodeJS.ProcessEnv;
}

async function waitReady(proc: SpawnedProcess, url: string, timeoutMs: number): Promise<void> {
  await waitFor(
    `${proc.name} to answer 200 on ${url}`,
    async () => {
      if (!proc.running) {
        throw new Error(`${proc.name} exited during start-up; its last output:\n${proc.tail()}`);
      }
      return (await httpStatus(url)) === 200;
    },
    { timeoutMs, intervalMs: 100 },
  ).catch((err: Error) => {
    throw new Error(`${err.message}\n--- ${proc.name} output ---\n${proc.tail()}`);
  });
}

export interface TokenServiceOptions {
  name?: string;
  databaseUrl: string;
  redisUrl?: string;
  masterKey: Buffer;
  /** More settings (GATEHOUSE_*). */
  env?: Record<string, string | undefined>;
}

export interface TokenServiceProcess {
  readonly grpcPort: number;
  readonly httpPort: number;
  /** The admin plane (AdminService, /metrics). */
  readonly adminPort: number;
  /** `http://127.0.0.1:<httpPort>`: the sidecars' GATEHOUSE_TOKEN_SERVICE_URL. */
  readonly url: string;
  readonly process: SpawnedProcess;
  /** Starts it again on the same ports (after a stop or a kill) and waits until it is ready. */
  restart(): Promise<void>;
  kill9(): Promise<Exit>;
  stop(): Promise<Exit>;
}

/** `gatehouse serve` as a child process on fresh loopback ports; resolves once /readyz answers 200. */
export async function startTokenServiceProcess(options: TokenServiceOptions): Promise<TokenServiceProcess> {
  const [grpcPort, httpPort, adminPort] = (await freePorts(3)) as [number, number, number];
  const masterKey = options.masterKey.toString("base64");
  rememberSecrets(masterKey);
  const env = baseEnv({
    DATABASE_URL: options.databaseUrl,
    REDIS_URL: options.redisUrl,
    GATEHOUSE_REVOCATION: options.redisUrl === undefined ? "none" : "stream",
    GATEHOUSE_MASTER_KEY: masterKey,
    GATEHOUSE_LISTEN: `127.0.0.1:${grpcPort}`,
    GATEHOUSE_HTTP_LISTEN: `127.0.0.1:${httpPort}`,
    GATEHOUSE_ADMIN_LISTEN: `127.0.0.1:${adminPort}`,
    GATEHOUSE_KEY_ROTATION: "off",
    GATEHOUSE_DATABASE_POOL_SIZE: "8",
    ...options.env,
  });
  const name = options.name ?? "token-service";
  const url = `http://127.0.0.1:${httpPort}`;
  const launch = async () => {
    const proc = spawnProcess(name, process.execPath, [BIN, "serve"], { env });
    await waitReady(proc, `${url}/readyz`, 60_000);
    return proc;
  };
  let proc = await launch();
  return {
    grpcPort,
    httpPort,
    adminPort,
    url,
    get process() {
      return proc;
    },
    async restart() {
      if (proc.running) await proc.stop();
      proc = await launch();
    },
    kill9() {
      proc.kill("SIGKILL");
      return proc.exited;
    },
    stop: () => proc.stop(),
  };
}

export interface SidecarOptions {
  name?: string;
  tokenServiceUrl: string;
  redisUrl?: string;
  stream?: string;
  env?: Record<string, string | undefined>;
}

export interface AuthzAnswer {
  status: number;
  /** The refusal's code (`token_revoked`, ...) from the JSON body, or "ok". */
  code: string;
}

export interface SidecarProcess {
  readonly controlPort: number;
  readonly proxyPort: number;
  readonly process: SpawnedProcess;
  /** Asks the forward-auth endpoint (`/authz`, as nginx or Traefik would) about a bearer token. */
  authz(token: string): Promise<AuthzAnswer>;
  readyStatus(): Promise<number>;
  stop(): Promise<Exit>;
}

/** `gatehouse sidecar` as a child process; resolves once its /readyz answers 200 (keys and stream in). */
export async function startSidecarProcess(options: SidecarOptions): Promise<SidecarProcess> {
  const [proxyPort, controlPort, upstreamPort] = (await freePorts(3)) as [number, number, number];
  const env = baseEnv({
    REDIS_URL: options.redisUrl,
    GATEHOUSE_REVOCATION: options.redisUrl === undefined ? "none" : "stream",
    GATEHOUSE_REVOCATION_STREAM: options.stream,
    GATEHOUSE_TOKEN_SERVICE_URL: options.tokenServiceUrl,
    GATEHOUSE_AUDIENCES: "orders",
    GATEHOUSE_PROXY_LISTEN: `127.0.0.1:${proxyPort}`,
    GATEHOUSE_CONTROL_LISTEN: `127.0.0.1:${controlPort}`,
    // Forward-auth never reaches the app; nothing listens here.
    GATEHOUSE_UPSTREAM: `http://127.0.0.1:${upstreamPort}`,
    ...options.env,
  });
  const proc = spawnProcess(options.name ?? "sidecar", process.execPath, [BIN, "sidecar"], { env });
  const control = `http://127.0.0.1:${controlPort}`;
  await waitReady(proc, `${control}/readyz`, 60_000);
  return {
    controlPort,
    proxyPort,
    process: proc,
    async authz(token) {
      const res = await fetch(`${control}/authz`, {
        headers: {
          authorization: `Bearer ${token}`,
          "x-forwarded-method": "GET",
          "x-forwarded-uri": "/orders",
        },
        signal: AbortSignal.timeout(5000),
      });
      const text = await res.text();
      if (res.status === 200) return { status: 200, code: "ok" };
      let code = "unknown";
      try {
        code = (JSON.parse(text) as { error?: string }).error ?? code;
      } catch {
        // not JSON: keep "unknown"
      }
      return { status: res.status, code };
    },
    readyStatus: () => httpStatus(`${control}/readyz`),
    stop: () => proc.stop(),
  };
}
