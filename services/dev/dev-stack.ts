import { mkdirSync } from "node:fs";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import {
  connectionFailure,
  type DatabaseTarget,
  migrate,
  openPGlite,
  type PGlite,
} from "../shared/database/index.ts";
import type { Logger } from "../shared/logging/index.ts";
import { createMetricsRegistry } from "../shared/metrics/index.ts";
import { createInProcessBus } from "../shared/revocation/in-process-bus.ts";
import { redisTargetOf } from "../shared/revocation/redis-target.ts";
import type { RevocationBus } from "../shared/revocation/revocation-bus.ts";
import { loadSettings, types } from "../shared/settings/index.ts";
import { type BusFollower, createBusFollower } from "../sidecar/revocation-stream/bus-follower.ts";
import { type RunningSidecar, startSidecar } from "../sidecar/sidecar.ts";
import { sidecarSettings } from "../sidecar/sidecar-settings.ts";
import { type RunningTokenService, startTokenService } from "../token/token-service.ts";
import { tokenServiceSettings } from "../token/token-service-settings.ts";
import type { BannerInput, DevUrls } from "./banner.ts";
import { type DemoApp, startDemoApp } from "./demo-app.ts";
import {
  DEMO_AUDIENCE,
  type DevState,
  ensureDevClients,
  loadOrCreateDevState,
  newDevState,
} from "./dev-state.ts";

/** The route policy of the dev sidecar: every route needs a `demo-api` token except `/public`. */
/** Dev data is throwaway: the compose placeholder or any other example master key is fine here. */
const devTokenServiceSettings = {
  ...tokenServiceSettings,
  masterKey: { ...tokenServiceSettings.masterKey, schema: types.key32() },
};

const DEMO_POLICY_FILE = fileURLToPath(new URL("./demo-policy.yaml", import.meta.url));

export interface DevPorts {
  grpc: number;
  http: number;
  proxy: number;
  control: number;
  app: number;
  /** The token service's admin plane (AdminService, /metrics). */
  admin: number;
}

/** The fixed ports of `gatehouse dev`, the deployed defaults (see DESIGN.md) plus the demo app. */
export const DEFAULT_DEV_PORTS: DevPorts = {
  grpc: 7400,
  http: 7480,
  proxy: 7401,
  control: 7402,
  app: 7410,
  admin: 7490,
};

export interface DevStackOptions {
  /** Folder for the embedded database and dev state; undefined: everything in memory, nothing written. */
  dataDir: string | undefined;
  /** 0 for any: the OS picks a free port, the banner shows it. */
  ports: DevPorts;
  /** Interface every listener binds; default 127.0.0.1 (the banner prints secrets: keep them local). */
  host?: string;
  /** DATABASE_URL, REDIS_URL, GATEHOUSE_* settings both processes kinds read. Default `process.env`. */
  env?: NodeJS.ProcessEnv;
  logger: Logger;
  /** How long draining may take on stop; default 2 s (a demo has little in flight). */
  shutdownGraceMs?: number;
  /** Longest wait for the sidecar's first JWKS and revocation bootstrap. Default 30 s. */
  readyTimeoutMs?: number;
}

export interface DevStack {
  readonly urls: DevUrls;
  readonly state: DevState;
  readonly tokenService: RunningTokenService;
  readonly sidecar: RunningSidecar;
  readonly demoApp: DemoApp;
  /** Everything the banner shows. */
  readonly banner: BannerInput;
  /** Stops the sidecar, the demo app, the token service, the buses and the database, in that order. Idempotent. */
  shutdown(): Promise<void>;
}

/**
 * Starts what `gatehouse dev` runs, in this process: migrations on embedded PGlite (or Postgres at
 * DATABASE_URL), the token service with the dev clients, the demo app, and one sidecar in front of
 * it that follows revocations (the in-process bus the token service's relay publishes to, or the
 * Redis stream at REDIS_URL). Resolves once the sidecar is ready: its JWKS loaded and its revocation
 * state bootstrapped. Whatever started before a failure is stopped again.
 */
export async function startDevStack(options: DevStackOptions): Promise<DevStack> {
  const env = options.env ?? process.env;
  const host = options.host ?? "127.0.0.1";
  const logger = options.logger;
  const grace = options.shutdownGraceMs ?? 2000;
  const { ports } = options;
  const stops: (() => Promise<unknown>)[] = [];
  const stopAll = async () => {
    for (const stop of stops.splice(0).reverse()) {
      try {
        await stop();
      } catch (err) {
        logger.warn({ err: (err as Error).message }, "stopping a dev component failed");
      }
    }
  };

  try {
    if (options.dataDir !== undefined) mkdirSync(options.dataDir, { recursive: true });
    const state = options.dataDir === undefined ? newDevState() : loadOrCreateDevState(options.dataDir);
    // The issuer names the token service; with an ephemeral port it cannot be known in advance.
    const issuer =
      env.GATEHOUSE_ISSUER ??
      (ports.http === 0 ? "http://gatehouse.localhost" : `http://${host}:${ports.http}`);
    const settings = loadSettings(devTokenServiceSettings, {
      env: {
        DATABASE_URL: "postgres://embedded/unused",
        GATEHOUSE_SHUTDOWN_GRACE: `${grace}ms`,
        ...env,
        GATEHOUSE_ISSUER: issuer,
        GATEHOUSE_MASTER_KEY: env.GATEHOUSE_MASTER_KEY ?? state.masterKey,
        GATEHOUSE_LISTEN: `${host}:${ports.grpc}`,
        GATEHOUSE_HTTP_LISTEN: `${host}:${ports.http}`,
        GATEHOUSE_ADMIN_LISTEN: `${host}:${ports.admin}`,
      },
    });

    const pglite: PGlite | undefined = env.DATABASE_URL
      ? undefined
      : await openPGlite(options.dataDir === undefined ? undefined : resolve(options.dataDir, "pglite"));
    if (pglite) stops.push(() => pglite.close());
    const database: DatabaseTarget = pglite
      ? { kind: "pglite", db: pglite }
      : { kind: "postgres", url: settings.databaseUrl };
    const { applied } = await migrate(database).catch((err) => {
      throw database.kind === "postgres" ? (connectionFailure(err, database.url) ?? err) : err;
    });
    if (applied.length > 0) logger.info({ applied }, "migrations applied");

    // Without Redis (REDIS_URL or REDIS_SENTINELS) the relay publishes to a bus in this process,
    // which the sidecar follows.
    const redis = redisTargetOf(settings);
    const inProcessBus = redis ? undefined : createInProcessBus();
    if (inProcessBus) stops.push(() => inProcessBus.close());
    const tokenService = await startTokenService({
      settings,
      database,
      logger: logger.child({ role: "token" }),
      ...(inProcessBus ? { bus: inProcessBus } : {}),
    });
    stops.push(() => tokenService.shutdown());
    await ensureDevClients(tokenService.db, state);
    const http = `http://${host}:${tokenService.httpPort}`;

    const demoApp = await startDemoApp({ host, port: ports.app });
    stops.push(() => demoApp.close());

    const sidecarConfig = loadSettings(sidecarSettings, {
      env: {
        GATEHOUSE_SHUTDOWN_GRACE: `${grace}ms`,
        ...env,
        GATEHOUSE_TOKEN_SERVICE_URL: http,
        GATEHOUSE_ISSUER: issuer,
        GATEHOUSE_AUDIENCES: DEMO_AUDIENCE,
        GATEHOUSE_UPSTREAM: demoApp.url,
        GATEHOUSE_POLICY_FILE: DEMO_POLICY_FILE,
        GATEHOUSE_PROXY_LISTEN: `${host}:${ports.proxy}`,
        GATEHOUSE_CONTROL_LISTEN: `${host}:${ports.control}`,
      },
    });
    const sidecarLogger = logger.child({ role: "sidecar" });
    const metrics = createMetricsRegistry("sidecar");
    let followBus: RevocationBus | undefined = inProcessBus;
    if (!followBus) {
      const { createRedisBus } = await import("../shared/revocation/redis-bus.ts");
      const redisBus = createRedisBus({
        url: redis?.url,
        redis: redis?.redis,
        name: "gatehouse-dev-sidecar",
        logger,
      });
      stops.push(() => redisBus.close());
      followBus = redisBus;
    }
    const follower: BusFollower = createBusFollower({
      bus: followBus,
      stream: sidecarConfig.revocationStream,
      stalenessBoundMs: sidecarConfig.stalenessBound,
      logger: sidecarLogger.child({ part: "revocations" }),
      metrics,
    });
    stops.push(() => follower.stop());
    const sidecar = await startSidecar({
      settings: sidecarConfig,
      logger: sidecarLogger,
      metrics,
      ...follower.sidecarOptions(),
    });
    stops.push(() => sidecar.shutdown());
    await withTimeout(sidecar.ready(), options.readyTimeoutMs ?? 30_000, () =>
      sidecar.readiness().problems.join("; "),
    );

    const urls: DevUrls = {
      grpc: `${host}:${tokenService.grpcPort}`,
      http,
      proxy: `http://${host}:${sidecar.proxyPort}`,
      control: `http://${host}:${sidecar.controlPort}`,
      app: demoApp.url,
      admin: `${host}:${tokenService.adminPort}`,
    };
    const banner: BannerInput = {
      urls,
      state,
      issuer,
      policyFile: DEMO_POLICY_FILE,
      revocations: inProcessBus
        ? "in-process bus (the sidecar follows the token service's relay in this process)"
        : `Redis stream ${sidecarConfig.revocationStream} (${redis?.where})`,
      data: describeData(options.dataDir, env),
    };
    let stopping: Promise<void> | undefined;
    return {
      urls,
      state,
      tokenService,
      sidecar,
      demoApp,
      banner,
      shutdown() {
        stopping ??= stopAll();
        return stopping;
      },
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}

function describeData(dataDir: string | undefined, env: NodeJS.ProcessEnv): string {
  const where = dataDir === undefined ? "in memory (--memory): nothing is kept" : dataDir;
  if (!env.DATABASE_URL)
    return `${where}${dataDir === undefined ? "" : " (PGlite, dev master key, demo credentials)"}`;
  let server = "DATABASE_URL";
  try {
    const url = new URL(env.DATABASE_URL);
    server = `Postgres at ${url.host}${url.pathname}${url.searchParams.has("schema") ? ` schema ${url.searchParams.get("schema")}` : ""}`;
  } catch {}
  return `${server}; dev master key and demo credentials: ${where}`;
}

async function withTimeout<T>(promise: Promise<T>, ms: number, why: () => string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`not ready after ${ms} ms: ${why()}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
