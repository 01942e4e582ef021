import { createLogger } from "../shared/logging/index.ts";
import { loadSettings } from "../shared/settings/index.ts";
import { startTracing } from "../shared/tracing/tracing.ts";
import { startTokenService } from "../token/token-service.ts";
import { tokenServiceSettings } from "../token/token-service-settings.ts";
import { type Command, EXIT_OK, settingFlags } from "./command.ts";
import { untilSignal } from "./signals.ts";

const usage = `Usage: gatehouse serve [--flag value ...]

Runs the token service:
  GATEHOUSE_LISTEN (:7400)        native gRPC: TokenService, grpc.health.v1.Health, server
                                  reflection (GATEHOUSE_GRPC_REFLECTION)
  GATEHOUSE_HTTP_LISTEN (:7480)   Connect/JSON and gRPC-Web for TokenService, the OAuth endpoints,
                                  /.well-known/*, /healthz, /readyz
  GATEHOUSE_ADMIN_LISTEN (:7490)  the admin plane: AdminService (native gRPC, Connect, gRPC-Web),
                                  /metrics, /healthz; admit operators and Prometheus only
Every setting is an environment variable or the flag named after it (GATEHOUSE_ISSUER: --issuer
URL); see docs/configuration.md. Any other flag is refused. Required: DATABASE_URL,
GATEHOUSE_ISSUER, GATEHOUSE_MASTER_KEY. Apply migrations first with \`gatehouse migrate\`. Stops
gracefully on SIGTERM or SIGINT.`;

export const serveCommand: Command = {
  name: "serve",
  summary: "Run the token service (gRPC :7400, HTTP :7480, admin :7490)",
  usage,
  async run(argv) {
    const settings = loadSettings(tokenServiceSettings, { flags: settingFlags(argv, tokenServiceSettings) });
    const logger = createLogger({ level: settings.logLevel, pretty: settings.logPretty, component: "token" });
    const tracing = await startTracing(settings, logger);
    const service = await startTokenService({
      settings,
      database: { kind: "postgres", url: settings.databaseUrl },
      logger,
      tracing,
    }).catch(async (err) => {
      await tracing?.shutdown();
      throw err;
    });
    const signal = await untilSignal();
    logger.info({ signal }, "shutting down");
    await service.shutdown();
    // After the listeners: the last calls' spans are exported too.
    await tracing?.shutdown();
    return EXIT_OK;
  },
};
