import { loadSettings } from "../shared/config/index.ts";
import { createLogger } from "../shared/logging/index.ts";
import { startTracing } from "../shared/tracing/tracing.ts";
import { startTokenService } from "../token/token-service.ts";
import { tokenServiceSettings } from "../token/token-service-settings.ts";
import { type Command, EXIT_OK, rawFlags } from "./command.ts";
import { untilSignal } from "./signals.ts";

const usage = `Usage: gatehouse serve [--flag value ...]

Runs the token service: native gRPC on GATEHOUSE_LISTEN (:7400); Connect/JSON, gRPC-Web,
/.well-known/jwks.json, /healthz, /readyz and /metrics on GATEHOUSE_HTTP_LISTEN (:7480).
Every setting is an environment variable or the matching flag; see docs/configuration.md.
Required: DATABASE_URL, GATEHOUSE_ISSUER, GATEHOUSE_MASTER_KEY. Apply migrations first with
\`gatehouse migrate\`. Stops gracefully on SIGTERM or SIGINT.`;

export const serveCommand: Command = {
  name: "serve",
  summary: "Run the token service (gRPC :7400, HTTP :7480)",
  usage,
  async run(argv) {
    const settings = loadSettings(tokenServiceSettings, { flags: rawFlags(argv) });
    const logger = createLogger({ level: settings.logLevel, pretty: settings.logPretty, component: "token" });
    const tracing = await startTracing(settings, logger);
    const service = await startTokenService({
      config: settings,
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
