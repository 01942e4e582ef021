import { createLogger } from "../shared/logging/logger.ts";
import { createMetricsRegistry } from "../shared/metrics/registry.ts";
import { redisTargetOf } from "../shared/revocation/redis-target.ts";
import { loadSettings } from "../shared/settings/settings.ts";
import { startTracing } from "../shared/tracing/tracing.ts";
import { revocationSourceOf } from "../sidecar/revocation-state/revocation-source.ts";
import { startSidecar } from "../sidecar/sidecar.ts";
import { sidecarSettings } from "../sidecar/sidecar-settings.ts";
import { type Command, EXIT_OK, settingFlags } from "./command.ts";
import { untilSignal } from "./signals.ts";

const usage = `Usage: gatehouse sidecar [--flag value ...]

Runs the sidecar verifier beside one app: the reverse proxy on GATEHOUSE_PROXY_LISTEN (:7401) in
front of GATEHOUSE_UPSTREAM (http:// for HTTP/1.1, h2c:// for HTTP/2 and gRPC), and on
GATEHOUSE_CONTROL_LISTEN (:7402) Envoy ext_authz and grpc.health.v1 (gRPC), forward-auth (/authz),
/healthz, /readyz and /metrics. With REDIS_URL (or REDIS_SENTINELS) it follows the revocation stream (readiness waits for its bootstrap),
so revoked tokens are refused within milliseconds; without it, it starts only with
GATEHOUSE_REVOCATION=none (revoked tokens then pass until they expire). Every setting is an environment variable or the
matching flag (any other flag is refused); see docs/configuration.md. Required: GATEHOUSE_ISSUER. Stops gracefully on SIGTERM
or SIGINT.`;

export const sidecarCommand: Command = {
  name: "sidecar",
  summary: "Run the sidecar verifier beside an app (:7401 proxy, :7402 control)",
  usage,
  async run(argv) {
    const settings = loadSettings(sidecarSettings, { flags: settingFlags(argv, sidecarSettings) });
    const logger = createLogger({
      level: settings.logLevel,
      pretty: settings.logPretty,
      component: "sidecar",
    });
    // Which build runs, as bin/gatehouse.mjs chose: the bundle's modules are .mjs files, tsx runs
    // the .ts sources. Worth a line: the tsx fallback costs about 50 MB of RSS.
    logger.info(
      { runtime: import.meta.url.endsWith(".ts") ? "tsx" : "bundle", node: process.version },
      "sidecar starting",
    );
    // Before anything connects: a sidecar that would follow no stream starts only when told to.
    const redis = redisTargetOf(settings);
    revocationSourceOf(settings.revocation, redis !== undefined);
    const metrics = createMetricsRegistry("sidecar");
    // Undefined unless an OTLP endpoint is set: only then is the SDK (a chunk of its own) loaded.
    const tracing = await startTracing(settings, logger);
    // The stream follower (and ioredis) load only when there is a stream to follow: the sidecar's
    // idle footprint is a target of its own.
    const follow = redis
      ? await (async () => {
          const [{ createRedisBus }, { createBusFollower }] = await Promise.all([
            import("../shared/revocation/redis-bus.ts"),
            import("../sidecar/revocation-stream/bus-follower.ts"),
          ]);
          const bus = createRedisBus({
            url: redis.url,
            redis: redis.redis,
            name: "gatehouse-sidecar",
            logger,
          });
          logger.info(
            { redis: redis.where, stream: settings.revocationStream },
            "following the revocation stream",
          );
          const revocations = createBusFollower({
            bus,
            stream: settings.revocationStream,
            stalenessBoundMs: settings.stalenessBound,
            logger: logger.child({ part: "revocations" }),
            metrics,
          });
          return { bus, revocations };
        })()
      : undefined;
    const stopFollowing = async () => {
      if (!follow) return;
      await follow.revocations.stop();
      await follow.bus.close();
    };
    let sidecar: Awaited<ReturnType<typeof startSidecar>>;
    try {
      sidecar = await startSidecar({
        settings,
        logger,
        metrics,
        tracing,
        ...(follow ? follow.revocations.sidecarOptions() : {}),
      });
    } catch (err) {
      // The follower's Redis connections would keep the process alive, never ready, forever.
      await stopFollowing();
      await tracing?.shutdown();
      throw err;
    }
    const signal = await untilSignal();
    logger.info({ signal }, "shutting down");
    await sidecar.shutdown();
    await stopFollowing();
    await tracing?.shutdown();
    return EXIT_OK;
  },
};
