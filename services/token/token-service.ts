import { channel } from "node:diagnostics_channel";
import type http from "node:http";
import { TokenService } from "../gen/proto/gatehouse/v1/token_service_pb.ts";
import { Health } from "../gen/proto/grpc/health/v1/health_pb.ts";
import { checkDatabase, createDatabase, type Database, migrationStatus } from "../shared/database/index.ts";
import type { DatabaseTarget } from "../shared/database/target.ts";
import type { Logger } from "../shared/logging/index.ts";
import { createMetricsRegistry, type Registry } from "../shared/metrics/index.ts";
import { createRedisBus } from "../shared/revocation/redis-bus.ts";
import { type RedisSettings, redisTargetOf } from "../shared/revocation/redis-target.ts";
import type { RevocationBus } from "../shared/revocation/revocation-bus.ts";
import { createGrpcHealth, type GrpcHealth } from "../shared/rpc/grpc-health.ts";
import { type RpcServers, sendJson, startRpcServers } from "../shared/rpc/index.ts";
import type { SettingsOf } from "../shared/settings/index.ts";
import type { Tracing } from "../shared/tracing/tracing.ts";
import type { TracingSettingKey } from "../shared/tracing/tracing-settings.ts";
import { adminServiceHandlers } from "./admin/admin-service-handlers.ts";
import { assertionAuthenticatorFromSettings } from "./assertions/assertions-from-settings.ts";
import { type AuditRetention, createAuditRetention } from "./audit/audit-retention.ts";
import { createFailedLoginAudit } from "./audit/failed-login-audit.ts";
import { createCallerAuthenticator } from "./clients/caller-authenticator.ts";
import { createCallerGate } from "./clients/caller-gate.ts";
import { createClientChangeWatch } from "./clients/client-change-watch.ts";
import { prismaClientLookup } from "./clients/prisma-client-lookup.ts";
import { applyClientsFileAtStart } from "./clients-file/clients-file-at-start.ts";
import type { FlowDeps } from "./flows/flow-deps.ts";
import { createSessionJanitor, type SessionJanitor } from "./janitor/session-janitor.ts";
import { keyLifecyclePolicy } from "./keys/key-lifecycle.ts";
import { createKeyRing, KEY_RING_POLL_MS, type KeyRing } from "./keys/key-ring.ts";
import { createKeyRotation, type KeyRotation } from "./keys/key-rotation.ts";
import { createMacKeys, createSuccessorKeys } from "./keys/refresh-keys.ts";
import { createSigningKeys } from "./keys/signing-keys.ts";
import { oauthRoutes } from "./oauth/oauth-routes.ts";
import {
  type OverloadSettingKey,
  type OverloadSettings,
  overloadGuardFromSettings,
  revokeGuardFromSettings,
} from "./overload/guard-from-settings.ts";
import { createOutboxRelay, type OutboxRelay, pgliteOutboxDb, poolOutboxDb } from "./revocation/index.ts";
import { registerRevocationTransport, revocationTransportOf } from "./revocation/revocation-transport.ts";
import { pgliteExecutor, poolExecutor } from "./store/sql-executor.ts";
import { createSqlTokenStore } from "./store/sql-token-store.ts";
import { pgliteTransactions, poolTransactions } from "./store/sql-transaction.ts";
import { tokenServiceHandlers } from "./token-service-handlers.ts";
import type { tokenServiceSettings } from "./token-service-settings.ts";

export type TokenServiceSettings = Omit<
  SettingsOf<typeof tokenServiceSettings>,
  | "databaseUrl"
  | "logLevel"
  | "logPretty"
  | "auditRetention"
  | "sessionRetention"
  | "janitorInterval"
  | "janitorBatchSize"
  | "clientsFile"
  | "adminListen"
  | "grpcReflection"
  | "databasePreparedStatements"
  | OverloadSettingKey
  | TracingSettingKey
  | keyof RedisSettings
> &
  OverloadSettings &
  /** REDIS_URL or REDIS_SENTINELS and theirs; none set runs without Redis. */
  RedisSettings & {
    /** GATEHOUSE_DATABASE_PREPARED_STATEMENTS; a hand-made settings without it names its statements. */
    databasePreparedStatements?: boolean;
    /** Loaded settings always have it (default 400 days); a hand-made settings without it keeps every event. */
    auditRetention?: number;
    /** Loaded settings always have the janitor's three; a hand-made settings without all of them runs no janitor. */
    sessionRetention?: number;
    janitorInterval?: number;
    janitorBatchSize?: number;
    /** GATEHOUSE_CLIENTS_FILE: a clients file applied before the service listens. */
    clientsFile?: string;
    /** Loaded settings always have it (default :7490); a hand-made settings without it gets any free port on the gRPC host. */
    adminListen?: { host: string; port: number };
    /** Loaded settings always have it; a hand-made settings without it serves reflection (the default). */
    grpcReflection?: boolean;
  };

export interface StartTokenServiceOptions {
  settings: TokenServiceSettings;
  database: DatabaseTarget;
  logger: Logger;
  /** Injectable clock (epoch ms) for tests. */
  now?: () => number;
  /**
   * The revocation bus the outbox relay publishes to (e.g. an in-process bus for `gatehouse dev`).
   * Default: Redis at `settings.redisUrl` or behind `settings.redisSentinels`; with neither, no relay runs and events wait in the outbox,
   * which `settings.revocation` must allow (`none`).
   */
  bus?: RevocationBus;
  /** Overrides the relay's fast-path publish (tests). */
  publish?: FlowDeps["publish"];
  metrics?: Registry;
  /** A span per RPC and OAuth request (the command starts it from the OTEL_* settings); none when omitted. */
  tracing?: Tracing | undefined;
}

export interface RunningTokenService {
  readonly grpcPort: number;
  readonly httpPort: number;
  /** The admin plane (AdminService, `/metrics`): GATEHOUSE_ADMIN_LISTEN. */
  readonly adminPort: number;
  readonly db: Database;
  readonly keys: KeyRing;
  readonly metrics: Registry;
  /** Graceful stop: readiness goes false, in-flight calls finish (up to the configured grace), pools close. */
  shutdown(): Promise<void>;
}

/** Starts the token service: database, keys, caller authentication, and every protocol's listener. */
export async function startTokenService(options: StartTokenServiceOptions): Promise<RunningTokenService> {
  const { settings, logger } = options;
  const now = options.now ?? Date.now;
  const redisTarget = redisTargetOf(settings);
  const transport = revocationTransportOf(
    settings.revocation,
    redisTarget !== undefined,
    options.bus !== undefined,
  );
  const metrics = options.metrics ?? createMetricsRegistry("token");
  // Before the pool and Prisma: an unreachable, misnamed or unmigrated database is one line, not
  // Prisma's dump from whichever query happened to run first.
  if (options.database.kind === "postgres") await checkDatabase(options.database);
  const db = await createDatabase(options.database, {
    poolSize: settings.databasePoolSize,
    preparedStatements: settings.databasePreparedStatements,
  });
  let servers: RpcServers | undefined;
  const keys = createKeyRing({ prisma: db.prisma, masterKey: settings.masterKey, log: logger, now });
  const refreshKeyOptions = {
    prisma: db.prisma,
    masterKey: settings.masterKey,
    log: logger,
    pollMs: KEY_RING_POLL_MS,
    now,
  };
  const successorKeys = createSuccessorKeys(refreshKeyOptions);
  const macKeys = createMacKeys(refreshKeyOptions);
  registerRevocationTransport(metrics, transport);
  if (transport === "none") {
    logger.warn(
      { revocation: transport },
      "GATEHOUSE_REVOCATION=none: revocations are not published, so sidecars accept revoked tokens until they expire",
    );
  }
  let rotation: KeyRotation | undefined;
  let retention: AuditRetention | undefined;
  let janitor: SessionJanitor | undefined;
  let health: GrpcHealth | undefined;
  const ownBus =
    !options.bus && redisTarget
      ? createRedisBus({ url: redisTarget.url, redis: redisTarget.redis, logger })
      : undefined;
  if (ownBus) logger.info({ redis: redisTarget?.where }, "publishing revocations to Redis");
  const bus = options.bus ?? ownBus;
  const relay: OutboxRelay | undefined = bus
    ? createOutboxRelay({
        db: db.pool ? poolOutboxDb(db.pool) : pgliteOutboxDb(db.pglite!),
        bus,
        stream: settings.revocationStream,
        maxAccessTokenTtlMs: settings.maxAccessTokenTtl,
        publishTimeoutMs: settings.publishTimeout,
        logger,
        metrics,
        now,
      })
    : undefined;
  const executor = db.pool ? poolExecutor(db.pool) : pgliteExecutor(db.pglite!);
  const clientWatch = createClientChangeWatch({
    db: executor,
    onChange: (ids) => {
      for (const id of ids) authenticator.forget(id);
    },
    log: logger,
  });
  const failedLogins = createFailedLoginAudit({
    db: executor,
    isListed: clientWatch.isListed,
    now,
    log: logger,
  });
  const assertions = assertionAuthenticatorFromSettings(settings, {
    prisma: db.prisma,
    db: executor,
    metrics,
    logger,
    now,
  });
  const authenticator = createCallerAuthenticator({
    clients: prismaClientLookup(db.prisma),
    cacheTtlMs: settings.credentialCacheTtl,
    isListed: clientWatch.isListed,
    onRefused: failedLogins.refused,
    assertions,
    now,
  });
  try {
    await keys.start();
    await successorKeys.start();
    await macKeys.start();
    await clientWatch.start();
    relay?.start();
    const deps = {
      prisma: db.prisma,
      store: createSqlTokenStore(executor),
      keys,
      issuer: settings.issuer,
      successorKeys,
      macKeys,
      maxAccessTokenTtlSeconds: Math.floor(settings.maxAccessTokenTtl / 1000),
      now,
      publish: options.publish ?? relay?.publish ?? (async () => false),
      log: logger,
      overload: overloadGuardFromSettings(settings, metrics),
      revokeLimit: revokeGuardFromSettings(settings, metrics),
      authenticator,
    };
    const trustedIssuers = settings.trustedIssuers.map((i) => i.issuer);
    if (settings.clientsFile) {
      await applyClientsFileAtStart({
        path: settings.clientsFile,
        env: process.env,
        db,
        deps: { ...deps, trustedIssuers },
      });
    }
    const signingKeys = createSigningKeys({
      prisma: db.prisma,
      masterKey: settings.masterKey,
      policy: keyLifecyclePolicy({ ...settings, reloadMs: KEY_RING_POLL_MS }),
      now,
    });
    rotation = createKeyRotation({ signingKeys, keyRing: keys, schedule: settings.keyRotation, log: logger });
    retention = createAuditRetention({
      db: db.pool ? poolOutboxDb(db.pool) : pgliteOutboxDb(db.pglite!),
      retentionMs: settings.auditRetention ?? 0,
      now,
      log: logger,
    });
    const { sessionRetention, janitorInterval, janitorBatchSize } = settings;
    if (sessionRetention !== undefined && janitorInterval && janitorBatchSize !== undefined) {
      janitor = createSessionJanitor({
        db: { ...executor, ...(db.pool ? poolTransactions(db.pool) : pgliteTransactions(db.pglite!)) },
        retentionMs: sessionRetention,
        batchSize: janitorBatchSize,
        intervalMs: janitorInterval,
        now,
        log: logger,
        metrics,
      });
    }
    const readiness = createReadiness(db, keys);
    health = createGrpcHealth({
      services: [TokenService.typeName],
      ready: async () => (await readiness()).length === 0,
      onError: (err) => logger.warn({ err }, "readiness check failed"),
    });
    await health.start();
    servers = await startRpcServers({
      grpc: { ...settings.grpcListen, setting: "GATEHOUSE_LISTEN" },
      http: { ...settings.httpListen, setting: "GATEHOUSE_HTTP_LISTEN" },
      maxConnections: settings.maxConnections,
      maxConcurrentStreams: settings.h2MaxConcurrentStreams,
      services: [tokenServiceHandlers(deps)],
      health,
      ...(settings.grpcReflection !== false ? { reflection: [TokenService, Health] } : {}),
      admin: {
        ...(settings.adminListen ?? { host: settings.grpcListen.host, port: 0 }),
        setting: "GATEHOUSE_ADMIN_LISTEN",
        services: [adminServiceHandlers({ ...deps, signingKeys, trustedIssuers })],
        routes: {
          "GET /healthz": (_req, res) => sendJson(res, 200, { status: "ok" }),
          "GET /metrics": async (_req, res) => {
            const text = await metrics.metrics();
            res.writeHead(200, { "content-type": metrics.contentType });
            res.end(text);
          },
        },
      },
      logger,
      metrics,
      tracing: options.tracing,
      extraRoutes: {
        "GET /.well-known/jwks.json": (req, res) => serveJwks(req, res, keys, settings.jwksMaxAge),
        ...oauthRoutes(
          { ...deps, gate: createCallerGate(deps) },
          { logger, metrics, tracing: options.tracing },
        ),
        "GET /readyz": async (_req, res) => {
          const problems = await readiness();
          sendJson(res, problems.length === 0 ? 200 : 503, {
            ready: problems.length === 0,
            problems,
            revocation: transport,
          });
        },
      },
    });
  } catch (err) {
    health?.drain();
    keys.stop();
    successorKeys.stop();
    macKeys.stop();
    assertions.stop();
    await clientWatch.stop();
    await relay?.stop();
    await ownBus?.close();
    await db.close();
    throw err;
  }
  const started = servers;
  rotation?.start();
  retention?.start();
  failedLogins.start();
  janitor?.start();
  const ports = { grpcPort: started.grpcPort, httpPort: started.httpPort, adminPort: started.adminPort! };
  logger.info({ ...ports, issuer: settings.issuer }, "token service listening");
  listening.publish(ports);
  let stopping: Promise<void> | undefined;
  return {
    ...ports,
    db,
    keys,
    metrics,
    shutdown() {
      stopping ??= (async () => {
        logger.info("token service draining");
        await started.shutdown(settings.shutdownGrace);
        await rotation?.stop();
        await retention?.stop();
        await failedLogins.stop();
        await janitor?.stop();
        await relay?.stop();
        await ownBus?.close();
        keys.stop();
        successorKeys.stop();
        macKeys.stop();
        assertions.stop();
        await clientWatch.stop();
        await db.close();
        logger.info("token service stopped");
      })();
      return stopping;
    },
  };
}

/**
 * Announces each start's ports ({ grpcPort, httpPort, adminPort }) to diagnostics_channel
 * subscribers in the same process, e.g. test harnesses and APM agents that need the admin port of a
 * service they only know by its gRPC port. Costs nothing without subscribers.
 */
const listening = channel("gatehouse:token-service:listening");

function serveJwks(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  keys: KeyRing,
  maxAgeMs: number,
): void {
  const jwks = keys.jwks();
  const headers = {
    "cache-control": `public, max-age=${Math.floor(maxAgeMs / 1000)}`,
    etag: jwks.etag,
  };
  if (req.headers["if-none-match"] === jwks.etag) {
    res.writeHead(304, headers);
    res.end();
    return;
  }
  res.writeHead(200, { ...headers, "content-type": "application/jwk-set+json" });
  res.end(jwks.json);
}

/**
 * Ready means: the database answers, its migrations are the ones this build expects, and there is a
 * key to sign with. Checked at most once a second, so probes cannot load the database.
 */
function createReadiness(db: Database, keys: KeyRing): () => Promise<string[]> {
  let last: { at: number; problems: string[] } | undefined;
  return async () => {
    if (last && Date.now() - last.at < 1000) return last.problems;
    const problems: string[] = [];
    try {
      await db.prisma.$queryRaw`SELECT 1`;
      const status = await migrationStatus(db);
      if (!status.current) problems.push(`migrations not current: ${status.pending.length} pending`);
    } catch (err) {
      problems.push(`database unreachable: ${(err as Error).message}`);
    }
    try {
      keys.active();
    } catch {
      problems.push("no active signing key");
    }
    last = { at: Date.now(), problems };
    return problems;
  };
}
