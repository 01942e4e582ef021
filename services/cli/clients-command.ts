import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import {
  AdminService,
  type Client,
  ClientRole,
  CreateClientRequestSchema,
  CreateClientResponseSchema,
  DisableClientResponseSchema,
  EnableClientResponseSchema,
  GetClientResponseSchema,
  ListClientsResponseSchema,
  RotateClientSecretResponseSchema,
  UpdateClientResponseSchema,
} from "../gen/proto/gatehouse/v1/admin_service_pb.ts";
import { databaseSettings, loadSettings } from "../shared/settings/index.ts";
import { createClient } from "../token/admin/client-admin.ts";
import { tokenServiceSettings } from "../token/token-service-settings.ts";
import { type Output, outputFor, printMessage, when } from "./cli-output.ts";
import { safeUser } from "./cli-user.ts";
import {
  clientDetails,
  clientsTable,
  durationFlag,
  integerFlag,
  roleFlag,
  SETTINGS_FLAGS,
  SETTINGS_USAGE,
  settingsFrom,
  showSecret,
} from "./client-flags.ts";
import { applyCommand } from "./clients-apply-command.ts";
import { EXIT_OK, parseFlags, UsageError } from "./command.ts";
import { commandGroup, positionalArgs, type Subcommand } from "./command-group.ts";
import { CONNECTION_FLAGS, CONNECTION_USAGE, type RpcConnection, withConnection } from "./rpc-connection.ts";

const COMMON = { ...CONNECTION_FLAGS, json: { type: "boolean" } } as const;

/** Flags that set a client's settings, shared by create and update. */
const createUsage = `Usage: gatehouse clients create --name TEXT --role ROLE [flags] [--json]
       gatehouse clients create --admin --direct [--id ID] [--name TEXT] [--database-url URL]

Registers a client (an internal service that calls Gatehouse) and prints its secret, the only time
it is ever shown.

  --id ID               client id: 3-64 of a-z 0-9 . _ - starting with a letter (default: generated)
  --admin               add the admin role (may call AdminService and every gatehouse command)
  --no-secret           no secret: the client authenticates only with client assertions, so it
                        needs --jwks-file, --jwks-uri or --federated-issuer and --federated-subject
  --direct              write straight to the database (DATABASE_URL) instead of calling the token
                        service: for the first admin of a new install and for break-glass access
  --database-url URL    with --direct: the Postgres to write to (default DATABASE_URL)
${SETTINGS_USAGE}
  --json                print the CreateClient response (with the secret) as JSON

${CONNECTION_USAGE}`;

const createCommand: Subcommand = {
  name: "create",
  summary: "Register a client and print its secret once",
  usage: createUsage,
  async run(argv) {
    const { values, positionals } = parseFlags(argv, {
      ...COMMON,
      ...SETTINGS_FLAGS,
      id: { type: "string" },
      admin: { type: "boolean" },
      "no-secret": { type: "boolean" },
      direct: { type: "boolean" },
      "database-url": { type: "string" },
    });
    positionalArgs(positionals, []);
    const { req } = settingsFrom(values);
    const roles = [...((req.roles as ClientRole[] | undefined) ?? [])];
    if (values.admin && !roles.includes(ClientRole.ADMIN)) roles.push(ClientRole.ADMIN);
    if (roles.length === 0) throw new UsageError("give at least one --role (or --admin)");
    const init = {
      ...req,
      roles,
      clientId: values.id ?? "",
      name: values.name ?? values.id ?? "",
      noSecret: values["no-secret"] ?? false,
    };
    if (!values.direct && init.name === "") throw new UsageError("--name is required");
    if (values.direct && init.name === "") init.name = "Gatehouse administrator";
    const output = outputFor(values.json);
    const res = values.direct
      ? await createDirect(init, values["database-url"])
      : await withConnection(AdminService, values, (c) => c.call("createClient", init));
    if (output.json)
      printMessage(output, CreateClientResponseSchema, create(CreateClientResponseSchema, res));
    else showSecret(output, res.client as Client | undefined, res.clientSecret ?? "");
    return EXIT_OK;
  },
};

/** The first admin (or break-glass access): the same rules and audit row, written without the service. */
async function createDirect(init: object, databaseUrlFlag: string | undefined) {
  const settings = loadSettings(
    {
      databaseUrl: databaseSettings.databaseUrl,
      maxAccessTokenTtl: tokenServiceSettings.maxAccessTokenTtl,
      trustedIssuers: tokenServiceSettings.trustedIssuers,
    },
    { flags: { "database-url": databaseUrlFlag } },
  );
  // Loaded on demand: the database layer is most of the CLI's start-up time.
  const { checkDatabase, createDatabase } = await import("../shared/database/index.ts");
  await checkDatabase({ url: settings.databaseUrl });
  const db = await createDatabase({ kind: "postgres", url: settings.databaseUrl }, { poolSize: 2 });
  try {
    const requestId = randomUUID();
    return await createClient(
      {
        prisma: db.prisma,
        now: Date.now,
        maxAccessTokenTtlSeconds: Math.floor(settings.maxAccessTokenTtl / 1000),
        trustedIssuers: settings.trustedIssuers.map((i) => i.issuer),
      },
      {
        clientId: "",
        requestId,
        by: { actor: `system:cli-direct:${safeUser()}`, requestId },
      },
      create(CreateClientRequestSchema, init),
    );
  } finally {
    await db.close();
  }
}

const listCommand: Subcommand = {
  name: "list",
  summary: "List clients ordered by id",
  usage: `Usage: gatehouse clients list [--role ROLE] [--include-disabled] [--name-prefix TEXT] [--limit N] [--all] [--json]

  --role ROLE            only clients with this role
  --include-disabled     also list disabled clients
  --name-prefix TEXT     only clients whose name starts with this (any case)
  --limit N              clients per page (default 50, at most 500)
  --page-token TOKEN     continue a listing (printed on stderr when there is more)
  --all                  follow every page
  --json                 print the response(s) as JSON

${CONNECTION_USAGE}`,
  async run(argv) {
    const { values, positionals } = parseFlags(argv, {
      ...COMMON,
      role: { type: "string" },
      "include-disabled": { type: "boolean" },
      "name-prefix": { type: "string" },
      limit: { type: "string" },
      "page-token": { type: "string" },
      all: { type: "boolean" },
    });
    positionalArgs(positionals, []);
    const base = {
      role: values.role ? roleFlag(values.role) : ClientRole.UNSPECIFIED,
      includeDisabled: values["include-disabled"] === true,
      namePrefix: values["name-prefix"] ?? "",
      pageSize: values.limit ? integerFlag("limit", values.limit) : 0,
    };
    const clients: Client[] = [];
    let pageToken = values["page-token"] ?? "";
    await withConnection(AdminService, values, async (c) => {
      do {
        const page = await c.call("listClients", { ...base, pageToken });
        clients.push(...page.clients);
        pageToken = page.nextPageToken;
      } while (values.all && pageToken !== "");
    });
    const output = outputFor(values.json);
    const res = create(ListClientsResponseSchema, { clients, nextPageToken: pageToken });
    if (output.json) printMessage(output, ListClientsResponseSchema, res);
    else {
      output.out(clientsTable(clients));
      if (pageToken) output.err(`more clients: --page-token ${pageToken} (or --all)`);
    }
    return EXIT_OK;
  },
};

/** A subcommand taking one CLIENT_ID, calling one RPC and printing its answer. */
function oneClient<R>(spec: {
  name: string;
  summary: string;
  usage: string;
  flags?: Record<string, { type: "string" | "boolean" }>;
  call: (
    c: RpcConnection<typeof AdminService>,
    clientId: string,
    values: Record<string, string | boolean | undefined>,
  ) => Promise<R>;
  print: (output: Output, res: R) => void;
}): Subcommand {
  return {
    name: spec.name,
    summary: spec.summary,
    usage: `${spec.usage}\n\n${CONNECTION_USAGE}`,
    async run(argv) {
      const { values, positionals } = parseFlags(argv, { ...COMMON, ...spec.flags });
      const [clientId] = positionalArgs(positionals, ["CLIENT_ID"]);
      const res = await withConnection(AdminService, values, (c) =>
        spec.call(c, clientId!, values as Record<string, string | boolean | undefined>),
      );
      spec.print(outputFor(values.json), res);
      return EXIT_OK;
    },
  };
}

const getCommand = oneClient({
  name: "get",
  summary: "Show one client",
  usage: "Usage: gatehouse clients get CLIENT_ID [--json]",
  call: (c, clientId) => c.call("getClient", { clientId }),
  print: (output, res) =>
    output.json
      ? printMessage(output, GetClientResponseSchema, res)
      : output.out(res.client ? clientDetails(res.client) : ""),
});

const updateCommand: Subcommand = {
  name: "update",
  summary: "Change a client's roles, audiences, scopes, claims, lifetimes or limits",
  usage: `Usage: gatehouse clients update CLIENT_ID [flags] [--json]

Changes only the settings given; lists replace the current list (--scope "" empties it) and a
duration of "default" restores the default. Applies to every token minted from now on, Refresh
included: a session's next refresh drops the scopes, audiences and claims removed here, and a session
whose tenant or subject the client no longer serves cannot refresh.

${SETTINGS_USAGE}
  --json                print the response as JSON

${CONNECTION_USAGE}`,
  async run(argv) {
    const { values, positionals } = parseFlags(argv, { ...COMMON, ...SETTINGS_FLAGS });
    const [clientId] = positionalArgs(positionals, ["CLIENT_ID"]);
    const { req, paths } = settingsFrom(values);
    if (paths.length === 0) throw new UsageError("nothing to update: give at least one setting flag");
    const res = await withConnection(AdminService, values, (c) =>
      c.call("updateClient", { ...req, clientId: clientId!, updateMask: { paths } }),
    );
    const output = outputFor(values.json);
    if (output.json) printMessage(output, UpdateClientResponseSchema, res);
    else output.out(res.client ? clientDetails(res.client) : "");
    return EXIT_OK;
  },
};

const rotateSecretCommand = oneClient({
  name: "rotate-secret",
  summary: "Issue a new secret; the previous one keeps working for an overlap",
  usage: `Usage: gatehouse clients rotate-secret CLIENT_ID [--overlap DUR] [--json]

Generates a new secret and prints it once. The previous secret keeps working for the overlap
(default 24h, at most 7d) so deployments can roll over; --overlap 0s ends it at once (after a leak).

  --overlap DUR   how long the previous secret keeps working
  --json          print the response (with the secret) as JSON`,
  flags: { overlap: { type: "string" } },
  call: (c, clientId, values) =>
    c.call("rotateClientSecret", {
      clientId,
      ...(typeof values.overlap === "string"
        ? { previousSecretOverlap: durationFlag("overlap", values.overlap) }
        : {}),
    }),
  print: (output, res) => {
    if (output.json) {
      printMessage(output, RotateClientSecretResponseSchema, res);
      return;
    }
    showSecret(output, undefined, res.clientSecret);
    output.out(`previous secret works until ${when(res.previousSecretExpiresAt)}`);
  },
});

const disableCommand = oneClient({
  name: "disable",
  summary: "Disable a client: its secrets stop working, its sessions and tokens are revoked",
  usage: `Usage: gatehouse clients disable CLIENT_ID [--reason TEXT] [--json]

Disables a client: its secrets stop working, every session it started is revoked and sidecars
reject every token issued to it. Idempotent. Re-enable with \`gatehouse clients enable\`.

  --reason TEXT   why, for the audit log (at most 256 characters)
  --json          print the response as JSON`,
  flags: { reason: { type: "string" } },
  call: (c, clientId, values) =>
    c.call("disableClient", { clientId, reason: typeof values.reason === "string" ? values.reason : "" }),
  print: (output, res) => {
    if (output.json) {
      printMessage(output, DisableClientResponseSchema, res);
      return;
    }
    output.out(
      `disabled ${res.client?.clientId}: ${res.sessionsRevoked} session(s) revoked; ` +
        (res.propagated ? "sidecars have been told" : "the revocation is queued for the sidecars (pending)"),
    );
  },
});

const enableCommand = oneClient({
  name: "enable",
  summary: "Re-enable a disabled client with its current secret",
  usage: `Usage: gatehouse clients enable CLIENT_ID [--json]

Re-enables a disabled client. Sessions and tokens revoked when it was disabled stay revoked; rotate
its secret too if it was disabled because of a leak. Right after a disable it waits (up to 3 s) until
the disable's cut-off has passed, so every token issued once it returns passes the sidecars.`,
  call: (c, clientId) => c.call("enableClient", { clientId }),
  print: (output, res) =>
    output.json
      ? printMessage(output, EnableClientResponseSchema, res)
      : output.out(res.client ? clientDetails(res.client) : ""),
});

export const clientsCommand = commandGroup(
  "clients",
  "Manage clients: create, list, get, update, rotate-secret, disable, enable, apply",
  [
    createCommand,
    listCommand,
    getCommand,
    updateCommand,
    rotateSecretCommand,
    disableCommand,
    enableCommand,
    applyCommand,
  ],
);
