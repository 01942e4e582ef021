import { Authorization } from "../gen/proto/envoy/service/auth/v3/external_auth_pb.ts";
import type { Logger } from "../shared/logging/logger.ts";
import { createMetricsRegistry, type Registry } from "../shared/metrics/registry.ts";
import { createHealthService } from "../shared/rpc/grpc-health-service.ts";
import { listenFailure } from "../shared/rpc/listen-failure.ts";
import { SettingsError, type SettingsOf } from "../shared/settings/settings.ts";
import type { Tracing } from "../shared/tracing/tracing.ts";
import { createControlServer } from "./control/control-server.ts";
import { createDecisionMetrics } from "./control/decision-metrics.ts";
import { createGuard } from "./control/guard.ts";
import { lightFetch } from "./control/light-fetch.ts";
import { type PolicyRefusal, type Readiness, readinessOf } from "./control/readiness.ts";
import { createCheckHandler } from "./ext-authz/check.ts";
import { createForwardAuth } from "./forward-auth/forward-auth.ts";
import { createJwksCache, type JwksCache } from "./jwks/jwks-cache.ts";
import { defaultPolicy, type Policy } from "./policy/compile-policy.ts";
import { type PolicyWatcher, watchPolicy } from "./policy/watch-policy.ts";
import { createProxyServer } from "./proxy/proxy-server.ts";
import { trustedProxies } from "./proxy/trusted-proxies.ts";
import { createUpstream, parseUpstream } from "./proxy/upstream.ts";
import { createMemoryRevocationState } from "./revocation-state/memory-revocation-state.ts";
import { revocationSourceOf } from "./revocation-state/revocation-source.ts";
import type { RevocationState } from "./revocation-state/revocation-state.ts";
import type { sidecarSettings } from "./sidecar-settings.ts";
import { assertSomeTokenAccepted, policyStartError } from "./startup-checks.ts";
import { createVerifier } from "./verifier/create-verifier.ts";

export type SidecarSettings = SettingsOf<typeof sidecarSettings>;

export interface StartSidecarOptions {
  settings: SidecarSettings;
  logger: Logger;
  /**
   * The revocation state every request is checked against; the revocation-stream follower plugs
   * its own state in here. Without one the sidecar refuses to start unless the `revocation` setting
   * is `none`: then an in-memory state that no stream feeds stands in, kept current by a timer (so
   * fail-closed does not refuse everything), and `/readyz`, a metric and the log say so.
   */
  revocation?: RevocationState;
  /** Resolves when an outside component is ready (e.g. the follower's bootstrap); `/readyz` waits for it. */
  onReady?: Promise<unknown>;
  /** Extra readiness check: the problems it returns make `/readyz` answer 503. */
  readiness?: () => readonly string[];
  /** For the JWKS fetches. Default: a small fetch on node:http (see control/light-fetch.ts). */
  fetch?: typeof globalThis.fetch;
  /** Epoch ms. Default `Date.now`. */
  now?: () => number;
  /** Where metrics go. Default: a new `sidecar` registry with the process metrics. */
  metrics?: Registry;
  /**
   * Spans for the proxy, ext_authz and forward-auth (the command starts it from the OTEL_*
   * settings); without it trace context passes through untouched and nothing is recorded.
   */
  tracing?: Tracing | undefined;
}

export interface RunningSidecar {
  readonly proxyPort: number;
  readonly controlPort: number;
  readonly revocation: RevocationState;
  readonly jwks: JwksCache;
  readonly metrics: Registry;
  /** The route policy in force. */
  policy(): Policy;
  /** What `/readyz` would answer now. */
  readiness(): Readiness;
  /** Resolves once the first JWKS is loaded and `onReady` has resolved. */
  ready(): Promise<void>;
  /**
   * Graceful stop: `/readyz` turns 503, the proxy stops accepting and lets requests in flight
   * finish (cut after `graceMs`, default the `shutdownGrace` setting) while the control port still
   * answers, then the control port closes and upstream connections are released. Same promise
   * when called twice.
   */
  shutdown(graceMs?: number): Promise<void>;
}

/**
 * Starts `gatehouse sidecar`: the JWKS cache (fetched at once, not awaited — `/readyz` says when),
 * the route policy (a file that does not compile stops start-up; later edits reload), the verifier,
 * the reverse proxy on `proxyListen` and the control port on `controlListen` (ext_authz gRPC,
 * `/authz`, `/healthz`, `/readyz`, `/metrics`). Imports nothing heavier than jose, protobuf-es,
 * prom-client and pino, so it is listening within milliseconds of being called.
 *
 * @example
 * const settings = loadSettings(sidecarSettings);
 * const sidecar = await startSidecar({ settings, logger: createLogger({ level: "info", component: "sidecar" }) });
 * process.once("SIGTERM", () => void sidecar.shutdown());
 */
export async function startSidecar(options: StartSidecarOptions): Promise<RunningSidecar> {
  const started = performance.now();
  const { settings } = options;
  const now = options.now ?? Date.now;
  const logger = options.logger;
  const failOpen = settings.failMode === "open";
  const metrics = options.metrics ?? createMetricsRegistry("sidecar");
  const target = parseUpstream(settings.upstream);

  const revocationSource = revocationSourceOf(settings.revocation, options.revocation !== undefined);
  let keepFresh: NodeJS.Timeout | undefined;
  let revocation = options.revocation;
  if (revocation === undefined) {
    const state = createMemoryRevocationState({ stalenessBoundMs: settings.stalenessBound });
    state.markFresh(now());
    keepFresh = setInterval(() => state.markFresh(now()), Math.max(500, settings.stalenessBound / 3));
    keepFresh.unref();
    revocation = state;
    logger.warn(
      { revocation: revocationSource },
      "GATEHOUSE_REVOCATION=none: no revocation stream is followed, revoked tokens pass until they expire",
    );
  }

  const jwksUrl = `${settings.tokenServiceUrl.replace(/\/+$/, "")}/.well-known/jwks.json`;
  const jwks = createJwksCache({
    url: jwksUrl,
    cooldownMs: settings.jwksCooldown,
    maxStaleMs: settings.jwksMaxStale,
    now,
    logger: logger.child({ part: "jwks" }),
    fetch: options.fetch ?? lightFetch,
  });

  let watcher: PolicyWatcher | undefined;
  let decisionMetrics: ReturnType<typeof createDecisionMetrics> | undefined;
  let policy: () => Policy;
  let policyRefusal: PolicyRefusal | undefined;
  try {
    if (settings.policyFile === undefined) {
      const fixed = defaultPolicy();
      policy = () => fixed;
    } else {
      watcher = watchPolicy(
        settings.policyFile,
        () => {
          policyRefusal = undefined;
          decisionMetrics?.policyReload("ok");
        },
        (err) => {
          const error = err.message.split("\n")[0] ?? "";
          policyRefusal = { refused: true, at: new Date(now()).toISOString(), error };
          decisionMetrics?.policyReload("error");
        },
        { logger: logger.child({ part: "policy" }) },
      );
      policy = watcher.current;
    }
    assertSomeTokenAccepted(policy(), settings.audiences);
  } catch (err) {
    jwks.stop();
    watcher?.close();
    clearInterval(keepFresh);
    throw settings.policyFile !== undefined && !(err instanceof SettingsError)
      ? policyStartError(settings.policyFile, err)
      : err;
  }

  const verifier = createVerifier({
    issuer: settings.issuer,
    audiences: settings.audiences,
    algorithms: settings.algorithms,
    clockSkewMs: settings.clockSkew,
    resolveKey: jwks.keyResolver,
    revocation,
    failOpen,
    exposeToken: settings.forwardToken,
    now,
    onDecision: (decision, _ms, cached) => {
      if (decision !== "missing_token") decisionMetrics?.cacheLookup(cached);
    },
  });
  decisionMetrics = createDecisionMetrics(metrics, {
    jwks,
    revocation,
    cacheSize: () => verifier.cacheSize,
    revocationSource,
    now,
  });
  const guard = createGuard({
    verifier,
    policy,
    metrics: decisionMetrics,
    logger,
    paths: { maxLength: settings.maxPathLength, allowEncodedSlashes: settings.allowEncodedSlashes },
  });
  const upstream = createUpstream(target, {
    connectTimeoutMs: settings.upstreamConnectTimeout,
    maxSockets: settings.upstreamMaxSockets,
  });

  let gateProblem: string | undefined = options.onReady === undefined ? undefined : "waiting for onReady";
  const gate = options.onReady?.then(
    () => {
      gateProblem = undefined;
    },
    (err: Error) => {
      gateProblem = `onReady failed: ${err?.message ?? String(err)}`;
      throw err;
    },
  );
  gate?.catch(() => {});

  let draining = false;
  const contributors: (() => readonly string[])[] = [() => (gateProblem === undefined ? [] : [gateProblem])];
  if (options.readiness !== undefined) contributors.push(options.readiness);
  const readiness = () =>
    readinessOf({
      jwks: jwks.status,
      revocation: revocation,
      revocationSource,
      failOpen,
      policy: () => policy().source,
      policyRefusal: () => policyRefusal,
      draining: () => draining,
      contributors,
      now,
    });

  const proxy = createProxyServer({
    guard,
    upstream,
    forwardToken: settings.forwardToken,
    stripAuthorization: settings.stripAuthorization,
    connectTimeoutMs: settings.upstreamConnectTimeout,
    trustedProxy: trustedProxies(settings.trustedProxies),
    limits: {
      maxConnections: settings.maxConnections,
      h2MaxConcurrentStreams: settings.h2MaxConcurrentStreams,
      idleTimeoutMs: settings.idleTimeout,
      headersTimeoutMs: settings.headersTimeout,
      bodyIdleTimeoutMs: settings.bodyIdleTimeout,
    },
    metrics: decisionMetrics,
    logger,
    tracing: options.tracing,
  });
  const health = createHealthService({
    services: [Authorization.typeName],
    serving: () => readiness().ready,
  });
  const control = createControlServer({
    check: createCheckHandler({
      guard,
      forwardToken: settings.forwardToken,
      stripAuthorization: settings.stripAuthorization,
      tracing: options.tracing,
    }),
    forwardAuth: createForwardAuth({
      guard,
      forwardToken: settings.forwardToken,
      headers: settings.forwardAuthHeaders,
      tracing: options.tracing,
    }),
    readiness,
    health,
    metrics,
    logger,
  });

  let proxyPort: number;
  let controlPort: number;
  try {
    proxyPort = await proxy
      .listen(settings.proxyListen.host, settings.proxyListen.port)
      .catch((err) => Promise.reject(listenFailure("GATEHOUSE_PROXY_LISTEN", settings.proxyListen, err)));
    controlPort = await control
      .listen(settings.controlListen.host, settings.controlListen.port)
      .catch((err) => Promise.reject(listenFailure("GATEHOUSE_CONTROL_LISTEN", settings.controlListen, err)));
  } catch (err) {
    await proxy.close(0);
    await control.close(0);
    jwks.stop();
    watcher?.close();
    clearInterval(keepFresh);
    upstream.close();
    throw err;
  }
  logger.info(
    {
      proxyPort,
      controlPort,
      upstream: settings.upstream,
      jwks: jwksUrl,
      policy: policy().source,
      failMode: settings.failMode,
      revocation: revocationSource,
      startMs: Math.round(performance.now() - started),
    },
    "sidecar listening",
  );

  const ready = async () => {
    await jwks.ready();
    await gate;
  };
  ready().then(
    () =>
      logger.info(
        { readyMs: Math.round(performance.now() - started), keys: jwks.status().keys },
        "sidecar ready",
      ),
    () => {},
  );

  let stopping: Promise<void> | undefined;
  return {
    proxyPort,
    controlPort,
    revocation,
    jwks,
    metrics,
    policy: () => policy(),
    readiness,
    ready,
    shutdown(graceMs = settings.shutdownGrace) {
      stopping ??= (async () => {
        draining = true;
        health.notify();
        logger.info({ graceMs }, "sidecar draining");
        await proxy.close(graceMs);
        health.stop();
        await control.close(Math.min(graceMs, 1000));
        upstream.close();
        jwks.stop();
        watcher?.close();
        clearInterval(keepFresh);
        logger.info("sidecar stopped");
      })();
      return stopping;
    },
  };
}
