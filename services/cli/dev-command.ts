import { resolve } from "node:path";
import { createLogger } from "../shared/logging/index.ts";
import { loadSettings, loggingSettings } from "../shared/settings/index.ts";
import { type Command, EXIT_OK, parseFlags, UsageError } from "./command.ts";
import { untilSignal } from "./signals.ts";

const usage = `Usage: gatehouse dev [--data DIR | --memory] [--any-ports] [--grpc-port N] [--http-port N]
                     [--admin-port N] [--proxy-port N] [--control-port N] [--app-port N]

Runs Gatehouse for local development in this one process: the token service, a demo app, and a
sidecar guarding it that follows revocations, on embedded PGlite and the in-process revocation
bus. Migrations are applied; a dev master key and two clients (demo-app, dev-admin) are created
and kept under DIR, so a second start reuses everything. Prints the URLs, the credentials and a
curl walk-through when ready; Ctrl-C stops everything.

DATABASE_URL, if set, is used instead of PGlite; REDIS_URL (or REDIS_SENTINELS), if set, carries revocations instead of
the in-process bus. Other GATEHOUSE_* settings apply as for serve and sidecar (docs/configuration.md).
Every listener binds 127.0.0.1.

  --data DIR          embedded database, dev master key and demo credentials (default .gatehouse)
  --memory            keep everything in memory and write nothing; gone on exit
  --grpc-port N       token service native gRPC (default 7400)
  --http-port N       token service Connect/JSON, gRPC-Web, JWKS, health (default 7480)
  --admin-port N      token service admin plane: AdminService, /metrics (default 7490)
  --proxy-port N      sidecar reverse proxy in front of the demo app (default 7401)
  --control-port N    sidecar ext_authz, /authz, health, metrics (default 7402)
  --app-port N        the demo app itself (default 7410)
  --any-ports         every listener on a free port the OS picks (0); the banner shows which`;

const PORT_FLAGS = {
  grpc: "grpc-port",
  http: "http-port",
  proxy: "proxy-port",
  control: "control-port",
  app: "app-port",
  admin: "admin-port",
} as const;

function parsePort(flag: string, value: string): number {
  const port = Number(value);
  if (!/^\d{1,5}$/.test(value) || port > 65535) throw new UsageError(`--${flag}: expected a port 0-65535`);
  return port;
}

export const devCommand: Command = {
  name: "dev",
  summary: "Run token service, demo app and sidecar on embedded defaults (npm start)",
  usage,
  async run(argv) {
    const { values } = parseFlags(argv, {
      data: { type: "string" },
      memory: { type: "boolean" },
      "any-ports": { type: "boolean" },
      "grpc-port": { type: "string" },
      "http-port": { type: "string" },
      "proxy-port": { type: "string" },
      "control-port": { type: "string" },
      "app-port": { type: "string" },
      "admin-port": { type: "string" },
    });
    if (values.memory && values.data !== undefined)
      throw new UsageError("--memory and --data exclude each other");
    if (values.memory && process.env.DATABASE_URL) {
      throw new UsageError(
        "--memory keeps the dev master key in memory, but DATABASE_URL keeps the keys it encrypts: use --data",
      );
    }
    // Loaded after the flags are checked: a usage error should not wait for PGlite and Prisma.
    const [{ DEFAULT_DEV_PORTS, startDevStack }, { renderBanner }] = await Promise.all([
      import("../dev/dev-stack.ts"),
      import("../dev/banner.ts"),
    ]);
    const ports = { ...DEFAULT_DEV_PORTS };
    for (const [key, flag] of Object.entries(PORT_FLAGS) as [keyof typeof PORT_FLAGS, string][]) {
      const given = values[flag as keyof typeof values];
      if (typeof given === "string") ports[key] = parsePort(flag, given);
      else if (values["any-ports"]) ports[key] = 0;
    }
    const logging = loadSettings(loggingSettings);
    const logger = createLogger({ level: logging.logLevel, pretty: logging.logPretty, component: "dev" });
    // Listening from the start: Ctrl-C during start-up must not kill PGlite in the middle of a write.
    let stopRequested: NodeJS.Signals | undefined;
    const signalled = untilSignal().then((signal) => {
      stopRequested = signal;
      return signal;
    });
    const stack = await startDevStack({
      dataDir: values.memory ? undefined : resolve(values.data ?? ".gatehouse"),
      ports,
      logger,
    }).catch((err: NodeJS.ErrnoException) => {
      if (err?.code !== "EADDRINUSE") throw err;
      throw new Error(`${err.message} (another gatehouse dev? choose ports with --*-port, or --any-ports)`);
    });
    // Log lines still in the pretty-printer's worker would land in the middle of the banner.
    await new Promise<void>((done) => logger.flush(() => done()));
    if (stopRequested === undefined) process.stdout.write(renderBanner(stack.banner));
    const signal = await signalled;
    logger.info({ signal }, "stopping");
    await stack.shutdown();
    logger.info("stopped");
    await new Promise<void>((done) => logger.flush(() => done()));
    return EXIT_OK;
  },
};
