import {
  ActivateSigningKeyResponseSchema,
  AdminService,
  CreateSigningKeyResponseSchema,
  ListSigningKeysResponseSchema,
  RetireSigningKeyResponseSchema,
  RevokeSigningKeyResponseSchema,
  RotateSigningKeysResponseSchema,
  SigningAlgorithm,
  type SigningKey,
  SigningKeyStatus,
} from "../gen/proto/gatehouse/v1/admin_service_pb.ts";
import { databaseSettings, loadSettings, setting, types } from "../shared/settings/index.ts";
import { rewrapKeys } from "../token/keys/key-rewrap.ts";
import {
  MAC_PURPOSE,
  type RefreshKeyPurpose,
  rotateRefreshKey,
  SUCCESSOR_PURPOSE,
} from "../token/keys/refresh-keys.ts";
import { tokenServiceSettings } from "../token/token-service-settings.ts";
import { outputFor, printJson, printMessage, table, when } from "./cli-output.ts";
import { EXIT_OK, parseFlags, UsageError } from "./command.ts";
import { commandGroup, positionalArgs, type Subcommand } from "./command-group.ts";
import { CONNECTION_FLAGS, CONNECTION_USAGE, withConnection } from "./rpc-connection.ts";

const COMMON = { ...CONNECTION_FLAGS, json: { type: "boolean" } } as const;

const ALGORITHMS: Record<string, SigningAlgorithm> = {
  eddsa: SigningAlgorithm.EDDSA,
  es256: SigningAlgorithm.ES256,
  rs256: SigningAlgorithm.RS256,
};

function algorithmFlag(value: string | undefined): SigningAlgorithm {
  if (value === undefined) return SigningAlgorithm.UNSPECIFIED;
  const algorithm = ALGORITHMS[value.toLowerCase()];
  if (algorithm === undefined)
    throw new UsageError(`--algorithm must be EdDSA, ES256 or RS256, got "${value}"`);
  return algorithm;
}

export function statusName(status: SigningKeyStatus): string {
  return (SigningKeyStatus[status] ?? "unknown").toLowerCase();
}

export function keysTable(keys: readonly SigningKey[]): string {
  return table(
    ["KID", "ALG", "STATUS", "CREATED", "ACTIVATED", "STOPPED SIGNING", "REMOVED"],
    keys.map((k) => [
      k.kid,
      k.publicJwk?.alg ?? "",
      statusName(k.status),
      when(k.createdAt),
      when(k.activatedAt),
      when(k.retiringAt),
      when(k.retiredAt ?? k.revokedAt),
    ]),
  );
}

const list: Subcommand = {
  name: "list",
  summary: "List signing keys, newest first",
  usage: `Usage: gatehouse keys list [--include-retired] [--json]

Lists the keys in the JWKS (staged, active, retiring), newest first.

  --include-retired   also list retired and revoked keys
  --json              print the ListSigningKeys response as JSON

${CONNECTION_USAGE}`,
  async run(argv) {
    const { values, positionals } = parseFlags(argv, { ...COMMON, "include-retired": { type: "boolean" } });
    positionalArgs(positionals, []);
    const res = await withConnection(AdminService, values, (c) =>
      c.call("listSigningKeys", { includeRetired: values["include-retired"] === true }),
    );
    const output = outputFor(values.json);
    if (output.json) printMessage(output, ListSigningKeysResponseSchema, res);
    else output.out(keysTable(res.keys));
    return EXIT_OK;
  },
};

const create: Subcommand = {
  name: "create",
  summary: "Generate a new key in the staged state (published, not signing)",
  usage: `Usage: gatehouse keys create [--algorithm EdDSA|ES256|RS256] [--rsa-bits 2048|3072] [--json]

Generates a signing key and publishes it in the JWKS without signing with it yet. Activate it with
\`gatehouse keys activate KID\` once it has been published longer than the JWKS cache period.

  --algorithm ALG   EdDSA (default), ES256 or RS256
  --rsa-bits N      RS256 modulus: 2048 (default) or 3072
  --json            print the response as JSON

${CONNECTION_USAGE}`,
  async run(argv) {
    const { values, positionals } = parseFlags(argv, {
      ...COMMON,
      algorithm: { type: "string" },
      "rsa-bits": { type: "string" },
    });
    positionalArgs(positionals, []);
    const rsaBits = values["rsa-bits"] === undefined ? 0 : Number(values["rsa-bits"]);
    if (!Number.isInteger(rsaBits)) throw new UsageError("--rsa-bits must be 2048 or 3072");
    const res = await withConnection(AdminService, values, (c) =>
      c.call("createSigningKey", { algorithm: algorithmFlag(values.algorithm), rsaBits }),
    );
    const output = outputFor(values.json);
    if (output.json) printMessage(output, CreateSigningKeyResponseSchema, res);
    else output.out(keysTable(res.key ? [res.key] : []));
    return EXIT_OK;
  },
};

const activate: Subcommand = {
  name: "activate",
  summary: "Make a staged key the signing key (the current one starts retiring)",
  usage: `Usage: gatehouse keys activate KID [--force] [--json]

Makes a staged key the active signing key; the previously active key becomes retiring (still
published until every token it signed has expired). Refused while the key has been published for
less than the JWKS cache period, unless --force.

  --force   activate even if sidecars may not have fetched the key yet
  --json    print the response as JSON

${CONNECTION_USAGE}`,
  async run(argv) {
    const { values, positionals } = parseFlags(argv, { ...COMMON, force: { type: "boolean" } });
    const [kid] = positionalArgs(positionals, ["KID"]);
    const res = await withConnection(AdminService, values, (c) =>
      c.call("activateSigningKey", { kid: kid!, force: values.force === true }),
    );
    const output = outputFor(values.json);
    if (output.json) printMessage(output, ActivateSigningKeyResponseSchema, res);
    else output.out(keysTable([res.key, res.previousKey].filter((k): k is SigningKey => k !== undefined)));
    return EXIT_OK;
  },
};

const retire: Subcommand = {
  name: "retire",
  summary: "Withdraw a staged key, or a retiring key whose tokens have all expired, from the JWKS",
  usage: `Usage: gatehouse keys retire KID [--json]

Removes a key from the JWKS after a normal lifecycle: a staged key that will not be used, or a
retiring key once the longest access-token lifetime has passed since it stopped signing. The
active key cannot be retired (activate its successor first); for a compromised key use
\`gatehouse keys revoke\`.

${CONNECTION_USAGE}`,
  async run(argv) {
    const { values, positionals } = parseFlags(argv, COMMON);
    const [kid] = positionalArgs(positionals, ["KID"]);
    const res = await withConnection(AdminService, values, (c) => c.call("retireSigningKey", { kid: kid! }));
    const output = outputFor(values.json);
    if (output.json) printMessage(output, RetireSigningKeyResponseSchema, res);
    else output.out(keysTable(res.key ? [res.key] : []));
    return EXIT_OK;
  },
};

const revoke: Subcommand = {
  name: "revoke",
  summary: "Revoke a compromised key: out of the JWKS at once, its tokens rejected",
  usage: `Usage: gatehouse keys revoke KID [--reason TEXT] [--json]

Revokes a compromised key: it leaves the JWKS at once and sidecars reject every token it signed as
soon as the revocation reaches them. If it was the active key, a staged key (or a new one) takes
over signing at once. Sessions survive: their next refresh gets a token signed by another key.

  --reason TEXT   why, for the audit log (at most 256 characters)
  --json          print the response as JSON

${CONNECTION_USAGE}`,
  async run(argv) {
    const { values, positionals } = parseFlags(argv, { ...COMMON, reason: { type: "string" } });
    const [kid] = positionalArgs(positionals, ["KID"]);
    const res = await withConnection(AdminService, values, (c) =>
      c.call("revokeSigningKey", { kid: kid!, reason: values.reason ?? "" }),
    );
    const output = outputFor(values.json);
    if (output.json) {
      printMessage(output, RevokeSigningKeyResponseSchema, res);
      return EXIT_OK;
    }
    output.out(keysTable([res.key, res.activatedKey].filter((k): k is SigningKey => k !== undefined)));
    output.out(
      `\nrevoked ${kid}: ${res.liveSessionsSigned} live session(s) held a token it signed; ` +
        (res.propagated ? "sidecars have been told" : "the revocation is queued for the sidecars (pending)"),
    );
    return EXIT_OK;
  },
};

const rotate: Subcommand = {
  name: "rotate",
  summary: "Run one step of scheduled rotation now",
  usage: `Usage: gatehouse keys rotate [--force] [--algorithm ALG] [--json]

Runs one step of the automatic rotation: stages a key when the active one is due, activates a staged
key that is due and published long enough, and retires retiring keys whose tokens have expired.
Safe to repeat; the token service runs the same step on a timer (GATEHOUSE_KEY_ROTATION).

  --force           rotate now as if the active key were due (still never activating a key
                    published for less than the JWKS cache period)
  --algorithm ALG   algorithm of a key this step stages (default: the active key's)
  --json            print the response as JSON

${CONNECTION_USAGE}`,
  async run(argv) {
    const { values, positionals } = parseFlags(argv, {
      ...COMMON,
      force: { type: "boolean" },
      algorithm: { type: "string" },
    });
    positionalArgs(positionals, []);
    const res = await withConnection(AdminService, values, (c) =>
      c.call("rotateSigningKeys", {
        force: values.force === true,
        algorithm: algorithmFlag(values.algorithm),
      }),
    );
    const output = outputFor(values.json);
    if (output.json) {
      printMessage(output, RotateSigningKeysResponseSchema, res);
      return EXIT_OK;
    }
    const lines = [
      res.staged && `staged     ${res.staged.kid}`,
      res.activated && `activated  ${res.activated.kid}`,
      res.retiring && `retiring   ${res.retiring.kid}`,
      ...res.retired.map((k) => `retired    ${k.kid}`),
    ].filter(Boolean);
    if (lines.length > 0) output.out(lines.join("\n"));
    else if (values.force === true && res.waiting) {
      output.out(
        `nothing changed: staged key ${res.waiting.kid} has been published for less than the JWKS cache ` +
          `period (GATEHOUSE_JWKS_MAX_AGE): \`keys rotate --force\` activates it from ${when(res.waitingActivatableAt)}; ` +
          `\`gatehouse keys activate ${res.waiting.kid} --force\` switches now, if every sidecar has fetched it`,
      );
    } else if (res.waiting) output.out(`nothing was due; staged key ${res.waiting.kid} signs next`);
    else output.out("nothing was due");
    output.out(`next step due ${when(res.nextRotationAt)}`);
    if (res.staged && !res.activated) {
      output.err(
        `${res.staged.kid} signs once it is due; to switch sooner, run \`gatehouse keys rotate --force\` ` +
          "again after the JWKS cache period (GATEHOUSE_JWKS_MAX_AGE), when every sidecar has fetched it",
      );
    }
    return EXIT_OK;
  },
};

const rewrapSettings = {
  databaseUrl: databaseSettings.databaseUrl,
  oldMasterKey: setting({
    env: "GATEHOUSE_OLD_MASTER_KEY",
    flag: "old-master-key",
    description: "the master key the signing keys are encrypted with now",
    secret: true,
    schema: types.key32(),
  }),
  newMasterKey: setting({
    env: "GATEHOUSE_NEW_MASTER_KEY",
    flag: "new-master-key",
    description: "the master key to encrypt them with",
    secret: true,
    schema: types.masterKey(),
  }),
};

const rewrap: Subcommand = {
  name: "rewrap",
  summary: "Re-encrypt every private key under a new master key (works on the database)",
  usage: `Usage: gatehouse keys rewrap --old-master-key B64 --new-master-key B64 [--database-url URL] [--json]

Re-encrypts every signing key's private part and every refresh key from the old master key to the
new one (refresh keys keep their value, so grace-window replays keep working), in one
transaction, directly in the database. Running replicas keep signing with the key they hold in
memory; then restart them one by one with GATEHOUSE_MASTER_KEY set to the new key. Running it
again is harmless (keys already under the new key are left alone).

  --old-master-key B64   current key (or GATEHOUSE_OLD_MASTER_KEY; prefer the variable)
  --new-master-key B64   new key, 32 random bytes in base64 (or GATEHOUSE_NEW_MASTER_KEY)
  --database-url URL     Postgres (default DATABASE_URL)
  --json                 print {"rewrapped": N, "alreadyNew": M}`,
  async run(argv) {
    const { values, positionals } = parseFlags(argv, {
      json: { type: "boolean" },
      "database-url": { type: "string" },
      "old-master-key": { type: "string" },
      "new-master-key": { type: "string" },
    });
    positionalArgs(positionals, []);
    const settings = loadSettings(rewrapSettings, {
      flags: {
        "database-url": values["database-url"],
        "old-master-key": values["old-master-key"],
        "new-master-key": values["new-master-key"],
      },
    });
    if (settings.oldMasterKey.equals(settings.newMasterKey)) {
      throw new UsageError("the old and the new master key are the same");
    }
    // Loaded on demand: the database layer is most of the CLI's start-up time.
    const { checkDatabase, createDatabase } = await import("../shared/database/index.ts");
    await checkDatabase({ url: settings.databaseUrl });
    const db = await createDatabase({ kind: "postgres", url: settings.databaseUrl }, { poolSize: 2 });
    try {
      const result = await rewrapKeys(db.prisma, settings.oldMasterKey, settings.newMasterKey, {
        actor: "system:cli",
      });
      const output = outputFor(values.json);
      if (output.json) printJson(output, result);
      else {
        output.out(
          `re-encrypted ${result.rewrapped} signing key(s) under the new master key` +
            (result.alreadyNew > 0 ? ` (${result.alreadyNew} already were)` : ""),
        );
        output.err("Now restart every token service replica with GATEHOUSE_MASTER_KEY set to the new key.");
      }
      return EXIT_OK;
    } finally {
      await db.close();
    }
  },
};

const rotateRefreshKeySettings = {
  databaseUrl: databaseSettings.databaseUrl,
  masterKey: tokenServiceSettings.masterKey,
};

/** `keys rotate-successor` and `keys rotate-mac`: one refresh-key purpose each, same mechanics. */
function rotateRefreshKeyCommand(
  purpose: RefreshKeyPurpose,
  name: string,
  summary: string,
  what: string,
  done: string,
): Subcommand {
  return {
    name,
    summary,
    usage: `Usage: gatehouse keys ${name} [--database-url URL] [--json]

${what} Replicas switch within seconds. Audited as refresh_key.rotate.
Reads GATEHOUSE_MASTER_KEY to encrypt the new key.

  --database-url URL   Postgres (default DATABASE_URL)
  --json               print {"kid": NEW, "replaced": OLD}`,
    async run(argv) {
      const { values, positionals } = parseFlags(argv, {
        json: { type: "boolean" },
        "database-url": { type: "string" },
      });
      positionalArgs(positionals, []);
      const settings = loadSettings(rotateRefreshKeySettings, {
        flags: { "database-url": values["database-url"] },
      });
      const { checkDatabase, createDatabase } = await import("../shared/database/index.ts");
      await checkDatabase({ url: settings.databaseUrl });
      const db = await createDatabase({ kind: "postgres", url: settings.databaseUrl }, { poolSize: 2 });
      try {
        const result = await rotateRefreshKey(db.prisma, settings.masterKey, purpose, {
          actor: "system:cli",
        });
        const output = outputFor(values.json);
        if (output.json) printJson(output, result);
        else output.out(`${done} ${result.kid} (replaced ${result.replaced ?? "none"})`);
        return EXIT_OK;
      } finally {
        await db.close();
      }
    },
  };
}

const rotateSuccessor = rotateRefreshKeyCommand(
  SUCCESSOR_PURPOSE,
  "rotate-successor",
  "Replace the refresh-successor key (works on the database)",
  `Creates a new random refresh-successor key (the HMAC key that derives a rotated refresh token's
successor, so a repeated Refresh inside the grace window gets the same one) and makes it the one
new rotations use. The key it replaces is kept: grace replays of tokens it already rotated still
derive the successor they handed out.`,
  "refresh successors now derive with",
);

const rotateMac = rotateRefreshKeyCommand(
  MAC_PURPOSE,
  "rotate-mac",
  "Replace the refresh-token MAC key (works on the database)",
  `Creates a new random refresh-token MAC key (the HMAC key authenticating refresh tokens, so a
made-up token is refused before the database is read) and makes it the one new tokens carry. The
key it replaces is kept: tokens it signed keep verifying until they are rotated.`,
  "refresh tokens are now signed with",
);

export const keysCommand = commandGroup(
  "keys",
  "Manage signing keys and the refresh keys: list, create, activate, retire, revoke, rotate, rewrap, rotate-successor, rotate-mac",
  [list, create, activate, retire, revoke, rotate, rewrap, rotateSuccessor, rotateMac],
);
