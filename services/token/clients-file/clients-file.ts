import { create } from "@bufbuild/protobuf";
import { isMap, isSeq, LineCounter, parseDocument } from "yaml";
import { CreateClientRequestSchema } from "../../gen/proto/gatehouse/v1/admin_service_pb.ts";
import { GatehouseError } from "../../shared/errors/gatehouse-error.ts";
import { SettingsError } from "../../shared/settings/settings.ts";
import { checkChosenSecret, checkClientId, settingsForCreate } from "../admin/client-settings.ts";
import { checkNoSecret, trustForCreate } from "../admin/client-trust.ts";
import {
  CLIENT_FILE_FIELDS,
  type ClientFileState,
  type ClientRequestFields,
  FieldTypeError,
  keyOfPath,
} from "./client-file-fields.ts";

/**
 * A clients file (`gatehouse clients apply -f`, GATEHOUSE_CLIENTS_FILE): every client by id with its
 * settings, validated strictly and by the same rules as CreateClient, so a file that parses is one
 * the server accepts. Absent settings mean their defaults: removing a line restores the default.
 *
 *   clients:
 *     - id: orders
 *       roles: [issuer]
 *       scopes: [orders.read]
 *       secret_from_env: ORDERS_SECRET
 *     - id: shop-orders
 *       federated_issuer: https://kubernetes.default.svc
 *       federated_subject: system:serviceaccount:shop:orders
 *       no_secret: true
 */
export interface DesiredClient {
  id: string;
  /** CreateClient's fields (the client id included): what a create sends, and an update's source. */
  request: ClientRequestFields & { clientId: string; name: string };
  /** The settings and trust the client must end up with, every default filled in. */
  settings: ClientFileState;
  /** Absent: left as it is, so a client disabled in an incident stays disabled when the file is applied. */
  disabled?: boolean;
  /** The secret, read from the environment variable the file names; never from the file itself. */
  secret?: { variable: string; value: string };
}

/** A refusal naming the file, the client and the key, on one line; the CLI exits 2 with it. */
export class ClientsFileError extends SettingsError {}

/** Keys a client entry may hold besides its settings. */
const OWN_KEYS = new Set(["id", "disabled", "secret_from_env", "no_secret"]);
const FIELD_BY_KEY = new Map(CLIENT_FILE_FIELDS.map((f) => [f.key, f]));
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;

export interface ParseOptions {
  /** How refusals name the file. */
  path: string;
  /** Where `secret_from_env` values come from (process.env). */
  env: Record<string, string | undefined>;
  /** GATEHOUSE_MAX_ACCESS_TOKEN_TTL in seconds, as CreateClient checks it. */
  maxAccessTokenTtlSeconds: number;
  /**
   * GATEHOUSE_TRUSTED_ISSUERS' issuers, as CreateClient checks federated_issuer against them.
   * Undefined over the AdminService, whose server checks its own list.
   */
  trustedIssuers?: readonly string[];
}

export function parseClientsFile(text: string, options: ParseOptions): DesiredClient[] {
  const fail = (where: string, problem: string): never => {
    throw new ClientsFileError(options.path, where ? `${where}: ${problem}` : problem);
  };
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: true, prettyErrors: false });
  const syntax = doc.errors[0];
  if (syntax) {
    const at = lines.linePos(syntax.pos[0]);
    fail(`line ${at.line}`, syntax.message.split("\n")[0]!);
  }
  const root = doc.contents;
  if (!isMap(root)) return fail("", 'must be a map with a "clients" list');
  for (const item of root.items) {
    const key = String((item.key as { value?: unknown })?.value ?? item.key);
    if (key !== "clients") fail("", `unknown key "${key}"`);
  }
  const list = root.get("clients", true);
  if (!isSeq(list)) return fail("", 'needs a "clients" list');
  const seen = new Set<string>();
  return list.items.map((node, index) => {
    const entry = isMap(node) ? (node.toJSON() as Record<string, unknown>) : undefined;
    if (!entry) return fail(`clients[${index}]`, "must be a map");
    const id = entry.id;
    if (typeof id !== "string") return fail(`clients[${index}]`, 'needs an "id" string');
    const where = `client ${id}`;
    if (seen.has(id)) fail(where, "is listed twice");
    seen.add(id);
    const client = parseEntry(entry, id, options, (key, problem) => fail(where, `${key} ${problem}`));
    return client;
  });
}

function parseEntry(
  entry: Record<string, unknown>,
  id: string,
  options: ParseOptions,
  fail: (key: string, problem: string) => never,
): DesiredClient {
  const request: ClientRequestFields = {};
  for (const [key, value] of Object.entries(entry)) {
    if (OWN_KEYS.has(key)) continue;
    const field = FIELD_BY_KEY.get(key);
    if (!field) fail(`"${key}"`, "is not a known key");
    try {
      Object.assign(request, field!.read(value));
    } catch (err) {
      if (err instanceof FieldTypeError) fail(key, err.message);
      throw err;
    }
  }
  try {
    checkClientId(id, "id");
  } catch (err) {
    if (err instanceof GatehouseError) fail("id", err.message.replace(/^id /, ""));
    throw err;
  }
  if (entry.no_secret !== undefined && typeof entry.no_secret !== "boolean") {
    fail("no_secret", "must be true or false");
  }
  const noSecret = entry.no_secret === true;
  if (noSecret && entry.secret_from_env !== undefined) {
    fail("no_secret", "and secret_from_env cannot both be set: a client without a secret takes none");
  }
  const full = {
    ...request,
    clientId: id,
    name: (request.name as string | undefined) ?? id,
    ...(noSecret ? { noSecret } : {}),
  };
  let settings: ClientFileState;
  try {
    // The file's fields become the request's: the same rules (role names, reserved claims, bounds,
    // trust sources) as CreateClient.
    const req = create(CreateClientRequestSchema, full);
    // Over the AdminService this side does not know the server's list: the server refuses an
    // untrusted issuer itself, when it creates or updates that client.
    const trusted = options.trustedIssuers ?? (req.federatedIssuer === "" ? [] : [req.federatedIssuer]);
    const trust = trustForCreate(req, trusted);
    checkNoSecret(noSecret, trust);
    settings = { ...settingsForCreate(req, options.maxAccessTokenTtlSeconds), ...trust };
  } catch (err) {
    if (!(err instanceof GatehouseError)) throw err;
    const path = err.metadata.field ?? "";
    const key = keyOfPath(path) ?? path;
    return fail(key, err.message.startsWith(`${path} `) ? err.message.slice(path.length + 1) : err.message);
  }
  const client: DesiredClient = { id, request: full, settings };
  if (entry.disabled !== undefined) {
    if (typeof entry.disabled !== "boolean") fail("disabled", "must be true or false");
    client.disabled = entry.disabled as boolean;
  }
  if (entry.secret_from_env !== undefined) {
    const variable = entry.secret_from_env;
    if (typeof variable !== "string" || !ENV_NAME.test(variable)) {
      fail("secret_from_env", "must name an environment variable");
    }
    const value = options.env[variable as string];
    if (value === undefined || value === "") fail("secret_from_env", `${variable} is not set`);
    try {
      checkChosenSecret(value!);
    } catch (err) {
      if (err instanceof GatehouseError)
        fail("secret_from_env", `${variable} ${err.message.replace(/^client_secret /, "")}`);
      throw err;
    }
    client.secret = { variable: variable as string, value: value! };
  }
  return client;
}
