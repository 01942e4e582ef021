import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { loadSettings } from "../shared/config/index.ts";
import { type Database, migrate } from "../shared/database/index.ts";
import { createLogger } from "../shared/logging/index.ts";
import { createInProcessBus } from "../shared/revocation/in-process-bus.ts";
import { basicAuthorization } from "../token/clients/basic-credentials.ts";
import { generateClientSecret, hashClientSecret } from "../token/clients/client-secret.ts";
import { startTokenService } from "../token/token-service.ts";
import { tokenServiceSettings } from "../token/token-service-settings.ts";
import { type Command, EXIT_OK, parseFlags } from "./command.ts";
import { untilSignal } from "./signals.ts";

const usage = `Usage: gatehouse dev [--data DIR]

Runs Gatehouse on embedded defaults for local development: the token service on an embedded
PGlite database under DIR (default .gatehouse/), with a generated master key and demo clients kept
there too, so a second start reuses everything. DATABASE_URL, if set, is used instead of PGlite.

  --data DIR   where the embedded database, dev master key and demo credentials live`;

interface DevState {
  masterKey: string;
  clients: Record<"admin" | "demo", { id: string; secret: string }>;
}

const DEMO_CLIENTS = {
  admin: { id: "dev-admin", roles: ["admin"] },
  demo: { id: "demo-app", roles: ["issuer", "revoker", "introspector"] },
} as const;

/** Dev-only state, kept in plain files: never the way to run in production. */
function loadOrCreateState(dataDir: string): DevState {
  const file = resolve(dataDir, "dev-state.json");
  if (existsSync(file)) return JSON.parse(readFileSync(file, "utf8")) as DevState;
  const state: DevState = {
    masterKey: randomBytes(32).toString("base64"),
    clients: {
      admin: { id: DEMO_CLIENTS.admin.id, secret: generateClientSecret() },
      demo: { id: DEMO_CLIENTS.demo.id, secret: generateClientSecret() },
    },
  };
  writeFileSync(file, JSON.stringify(state, null, 2), { mode: 0o600 });
  return state;
}

async function ensureDemoClients(db: Database, state: DevState): Promise<void> {
  for (const which of ["admin", "demo"] as const) {
    const { id, secret } = state.clients[which];
    if (await db.prisma.client.findUnique({ where: { id }, select: { id: true } })) continue;
    await db.prisma.client.create({
      data: {
        id,
        name: which === "admin" ? "Dev admin" : "Demo app",
        secretHash: await hashClientSecret(secret),
        roles: [...DEMO_CLIENTS[which].roles],
        allowedAudiences: ["demo-api"],
        allowedScopes: ["profile", "orders:read", "orders:write"],
        allowedClaims: ["name"],
      },
    });
  }
}

function banner(http: string, grpcPort: number, state: DevState, dataDir: string): string {
  const demo = state.clients.demo;
  const auth = basicAuthorization(demo.id, demo.secret);
  const call = (method: string, body: string) =>
    `curl -s ${http}/gatehouse.v1.TokenService/${method} -H 'content-type: application/json' -H '${`authorization: ${auth}`}' -d '${body}'`;
  return [
    "",
    "  Gatehouse dev is running",
    "",
    `  token service   gRPC 127.0.0.1:${grpcPort}   Connect/JSON + gRPC-Web ${http}`,
    `  JWKS            ${http}/.well-known/jwks.json`,
    `  health          ${http}/healthz  ${http}/readyz  ${http}/metrics`,
    `  data            ${dataDir} (PGlite, dev master key, demo credentials)`,
    "",
    `  demo client     ${demo.id} / ${demo.secret}   (issuer, revoker, introspector)`,
    `  admin client    ${state.clients.admin.id} / ${state.clients.admin.secret}`,
    "",
    "  Try it:",
    `    ${call("Issue", '{"subject":"alice","audience":["demo-api"],"scopes":["profile"]}')}`,
    `    ${call("Refresh", '{"refreshToken":"<refreshToken from above>"}')}`,
    `    ${call("Revoke", '{"sessionId":"<sessionId from above>"}')}`,
    "",
    "  Ctrl-C stops it.",
    "",
  ].join("\n");
}

export const devCommand: Command = {
  name: "dev",
  summary: "Run Gatehouse on embedded defaults for local development (npm start)",
  usage,
  async run(argv) {
    const { values } = parseFlags(argv, { data: { type: "string" } });
    const dataDir = resolve(values.data ?? ".gatehouse");
    mkdirSync(dataDir, { recursive: true });
    const state = loadOrCreateState(dataDir);
    const settings = loadSettings(tokenServiceSettings, {
      env: {
        GATEHOUSE_ISSUER: "http://127.0.0.1:7480",
        DATABASE_URL: "postgres://embedded/unused",
        ...process.env,
        GATEHOUSE_MASTER_KEY: process.env.GATEHOUSE_MASTER_KEY ?? state.masterKey,
      },
    });
    const logger = createLogger({ level: settings.logLevel, pretty: settings.logPretty, component: "dev" });
    const database = process.env.DATABASE_URL
      ? ({ kind: "postgres", url: settings.databaseUrl } as const)
      : ({ kind: "pglite", dataDir: resolve(dataDir, "pglite") } as const);
    const { applied } = await migrate(database);
    if (applied.length > 0) logger.info({ applied }, "migrations applied");
    // Without REDIS_URL, revocations go to an in-process bus (a dev sidecar in this process can follow it).
    const bus = settings.redisUrl ? undefined : createInProcessBus();
    const service = await startTokenService({ config: settings, database, logger, bus });
    await ensureDemoClients(service.db, state);
    const http = `http://127.0.0.1:${service.httpPort}`;
    process.stdout.write(banner(http, service.grpcPort, state, dataDir));
    await untilSignal();
    await service.shutdown();
    return EXIT_OK;
  },
};
