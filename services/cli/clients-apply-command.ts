import { randomUUID } from "node:crypto";
import { AdminService, type Client } from "../gen/proto/gatehouse/v1/admin_service_pb.ts";
import { createLogger } from "../shared/logging/index.ts";
import { databaseSettings, loadSettings } from "../shared/settings/index.ts";
import { applyClientsFileDirect, readClientsFile } from "../token/clients-file/apply-clients-file.ts";
import { settingsOfMessage } from "../token/clients-file/client-file-fields.ts";
import {
  type AppliedClient,
  applyClients,
  type ClientAdminPort,
  describeApplied,
} from "../token/clients-file/clients-apply.ts";
import { tokenServiceSettings } from "../token/token-service-settings.ts";
import { outputFor } from "./cli-output.ts";
import { safeUser } from "./cli-user.ts";
import { EXIT_OK, parseFlags, UsageError } from "./command.ts";
import { positionalArgs, type Subcommand } from "./command-group.ts";
import { CONNECTION_FLAGS, CONNECTION_USAGE, type RpcConnection, withConnection } from "./rpc-connection.ts";

/** The longest access_token_ttl any server allows: over RPC the server checks its own, lower bound. */
const MAX_ACCESS_TTL_SECONDS = 3600;

const usage = `Usage: gatehouse clients apply -f FILE [--dry-run] [--prune] [--direct [--database-url URL]]

Makes the registered clients match a clients file (see docs/operations.md, "Clients as code"):
creates the clients it lists, updates the settings that differ, and leaves equal ones alone (no
write, no audit event). A setting the file leaves out means its default. Secrets never live in the
file: a new client's generated secret is printed once, or \`secret_from_env: VAR\` takes it from
the environment variable VAR (rotated only when it differs from the stored one).

  -f, --file FILE       the clients file (YAML)
  --dry-run             print what would change and write nothing
  --prune               disable (not delete) enabled clients the file does not list, admins
                        excepted; without it nothing is disabled. A pruned client listed again
                        is enabled again.
  --direct              write straight to the database (DATABASE_URL) instead of calling the token
                        service, with the same rules and audit events
  --database-url URL    with --direct: the Postgres to write to (default DATABASE_URL)

Exit 2 when the file is invalid (one line naming the file, the client and the key).

${CONNECTION_USAGE}`;

/** The AdminService as `clients apply` uses it. */
function rpcClientAdmin(c: RpcConnection<typeof AdminService>): ClientAdminPort {
  return {
    async list() {
      const clients: Client[] = [];
      let pageToken = "";
      do {
        const page = await c.call("listClients", { includeDisabled: true, pageSize: 500, pageToken });
        clients.push(...page.clients);
        pageToken = page.nextPageToken;
      } while (pageToken !== "");
      return clients.map((client) => ({
        id: client.clientId,
        settings: settingsOfMessage(client),
        disabled: client.disabledAt !== undefined,
        disabledReason: client.disabledReason,
        hasSecret: client.hasSecret,
      }));
    },
    async create(request, secret) {
      const res = await c.call("createClient", request);
      if (secret === undefined) return res.clientSecret;
      // CreateClient always generates one: replace it at once, before anyone could have it.
      await c.call("rotateClientSecret", {
        clientId: request.clientId,
        clientSecret: secret,
        previousSecretOverlap: { seconds: 0n },
      });
      return "";
    },
    async update(clientId, request, paths) {
      await c.call("updateClient", { ...request, clientId, updateMask: { paths } });
    },
    async disable(clientId, reason) {
      await c.call("disableClient", { clientId, reason });
    },
    async enable(clientId) {
      await c.call("enableClient", { clientId });
    },
    async adoptSecret(clientId, secret, options) {
      const res = await c.call("rotateClientSecret", {
        clientId,
        clientSecret: secret,
        validateOnly: options.dryRun,
      });
      return res.rotated;
    },
  };
}

async function applyDirect(
  file: string,
  options: { prune: boolean; dryRun: boolean; databaseUrl: string | undefined },
): Promise<AppliedClient[]> {
  const settings = loadSettings(
    {
      databaseUrl: databaseSettings.databaseUrl,
      maxAccessTokenTtl: tokenServiceSettings.maxAccessTokenTtl,
      trustedIssuers: tokenServiceSettings.trustedIssuers,
    },
    { flags: { "database-url": options.databaseUrl } },
  );
  const maxAccessTokenTtlSeconds = Math.floor(settings.maxAccessTokenTtl / 1000);
  const trustedIssuers = settings.trustedIssuers.map((i) => i.issuer);
  // Refuse a bad file before opening the database.
  await readClientsFile(file, { env: process.env, maxAccessTokenTtlSeconds, trustedIssuers });
  const { createDatabase } = await import("../shared/database/index.ts");
  const db = await createDatabase({ kind: "postgres", url: settings.databaseUrl }, { poolSize: 3 });
  try {
    const requestId = randomUUID();
    return await applyClientsFileDirect({
      path: file,
      env: process.env,
      prune: options.prune,
      dryRun: options.dryRun,
      db,
      deps: {
        prisma: db.prisma,
        now: Date.now,
        maxAccessTokenTtlSeconds,
        trustedIssuers,
        // Replicas learn of the change through their client change watch; the outbox relay of a
        // running token service publishes a disable's revocation event.
        authenticator: { forget() {} },
        publish: async () => false,
        log: createLogger({ level: "warn", component: "cli" }),
      },
      caller: { clientId: "", requestId, by: { actor: `system:cli-direct:${safeUser()}`, requestId } },
    });
  } finally {
    await db.close();
  }
}

export const applyCommand: Subcommand = {
  name: "apply",
  summary: "Make the registered clients match a clients file (declarative, idempotent)",
  usage,
  async run(argv) {
    const { values, positionals } = parseFlags(argv, {
      ...CONNECTION_FLAGS,
      file: { type: "string", short: "f" },
      "dry-run": { type: "boolean" },
      prune: { type: "boolean" },
      direct: { type: "boolean" },
      "database-url": { type: "string" },
    });
    positionalArgs(positionals, []);
    const file = values.file;
    if (!file) throw new UsageError("-f FILE is required");
    const options = { prune: values.prune === true, dryRun: values["dry-run"] === true };
    let results: AppliedClient[];
    if (values.direct) {
      results = await applyDirect(file, { ...options, databaseUrl: values["database-url"] });
    } else {
      const desired = await readClientsFile(file, {
        env: process.env,
        maxAccessTokenTtlSeconds: MAX_ACCESS_TTL_SECONDS,
      });
      results = await withConnection(AdminService, values, (c) =>
        applyClients(rpcClientAdmin(c), desired, options),
      );
    }
    const output = outputFor(false);
    output.out(
      describeApplied(results, options.dryRun) || "the file lists no clients and none are registered",
    );
    for (const r of results) {
      if (r.secret) output.out(`\nclient secret of ${r.id}: ${r.secret}`);
    }
    if (results.some((r) => r.secret)) {
      output.err("Store the secrets now: Gatehouse keeps only hashes and will not show them again.");
    }
    return EXIT_OK;
  },
};
