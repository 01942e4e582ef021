import { readFileSync } from "node:fs";
import { type Duration, durationFromMs, durationMs } from "@bufbuild/protobuf/wkt";
import { type Client, ClientRole } from "../gen/proto/gatehouse/v1/admin_service_pb.ts";
import { types } from "../shared/settings/index.ts";
import { fields, type Output, span, table, when } from "./cli-output.ts";
import { UsageError } from "./command.ts";

/** Client settings as `gatehouse clients create|update` flags, and how clients are printed. */
export const SETTINGS_FLAGS = {
  name: { type: "string" },
  role: { type: "string", multiple: true },
  audience: { type: "string", multiple: true },
  scope: { type: "string", multiple: true },
  claim: { type: "string", multiple: true },
  tenant: { type: "string", multiple: true },
  "subject-prefix": { type: "string", multiple: true },
  "access-ttl": { type: "string" },
  "idle-ttl": { type: "string" },
  "absolute-ttl": { type: "string" },
  grace: { type: "string" },
  "rate-limit": { type: "string" },
  "rate-burst": { type: "string" },
  "jwks-file": { type: "string" },
  "jwks-uri": { type: "string" },
  "federated-issuer": { type: "string" },
  "federated-subject": { type: "string" },
} as const;

export const SETTINGS_USAGE = `  --name TEXT           human-readable name (1-128 characters)
  --role ROLE           issuer, service, revoker, introspector or admin; repeat for several
  --audience AUD        an audience the client may request tokens for; repeat for several
  --scope SCOPE         a scope the client may request; repeat for several
  --claim NAME          a custom claim the client may set; repeat for several
  --tenant TENANT       a tenant the client may set; repeat for several; '*' alone: any tenant
                        (default: none, the client cannot set a tenant)
  --subject-prefix P    subjects must start with P; repeat for several (default: any subject)
  --access-ttl DUR      access-token lifetime, 1m-60m (default 10m)
  --idle-ttl DUR        session idle timeout, 1h up to --absolute-ttl (default 14d)
  --absolute-ttl DUR    session absolute lifetime, 1h-365d (default 90d)
  --grace DUR           refresh grace window, 0s-60s (default 10s; 0s disables it)
  --rate-limit N        calls per second of each rate-limited method, replacing the server's
                        GATEHOUSE_RATE_LIMIT_* for this client (0: the server defaults)
  --rate-burst N        how many calls may come at once after a quiet spell (0: same as the rate)
  --jwks-file PATH      private_key_jwt: the client's public JWK Set, read from PATH ('' clears)
  --jwks-uri URL        private_key_jwt: where the client's JWK Set is served ('' clears)
  --federated-issuer U  a trusted issuer (GATEHOUSE_TRUSTED_ISSUERS) whose tokens authenticate
                        the client, with --federated-subject ('' clears)
  --federated-subject S the exact sub of those tokens, e.g. system:serviceaccount:shop:orders`;

type SettingsValues = {
  [K in keyof typeof SETTINGS_FLAGS]?: (typeof SETTINGS_FLAGS)[K] extends { multiple: true }
    ? string[]
    : string;
};

const ROLES: Record<string, ClientRole> = {
  issuer: ClientRole.ISSUER,
  service: ClientRole.SERVICE,
  revoker: ClientRole.REVOKER,
  introspector: ClientRole.INTROSPECTOR,
  admin: ClientRole.ADMIN,
};

export function roleFlag(value: string): ClientRole {
  const role = ROLES[value.toLowerCase()];
  if (role === undefined)
    throw new UsageError(`--role must be one of ${Object.keys(ROLES).join(", ")}, got "${value}"`);
  return role;
}

function roleName(role: ClientRole): string {
  return Object.entries(ROLES).find(([, v]) => v === role)?.[0] ?? String(role);
}

/** A duration flag; "default" (update only) means unset, which restores the default. */
export function durationFlag(flag: string, value: string): Duration | undefined {
  if (value === "default") return undefined;
  const parsed = types.duration().safeParse(value);
  if (!parsed.success) throw new UsageError(`--${flag}: expected a duration such as 30s, 10m, 1h or 14d`);
  return durationFromMs(parsed.data);
}

export function integerFlag(flag: string, value: string): number {
  if (!/^\d{1,9}$/.test(value)) throw new UsageError(`--${flag} must be a non-negative integer`);
  return Number(value);
}

/** `--scope ""` clears a list. */
const list = (values: string[]) => values.filter((v) => v !== "");

/** Request fields from the flags given, and the update_mask paths they name. */
export function settingsFrom(values: SettingsValues) {
  const req: Record<string, unknown> = {};
  const paths: string[] = [];
  const set = (path: string, key: string, value: unknown) => {
    paths.push(path);
    if (value !== undefined) req[key] = value;
  };
  if (values.name !== undefined) set("name", "name", values.name);
  if (values.role) set("roles", "roles", values.role.map(roleFlag));
  if (values.audience) set("allowed_audiences", "allowedAudiences", list(values.audience));
  if (values.scope) set("allowed_scopes", "allowedScopes", list(values.scope));
  if (values.claim) set("allowed_claims", "allowedClaims", list(values.claim));
  if (values.tenant) set("allowed_tenants", "allowedTenants", list(values.tenant));
  if (values["subject-prefix"])
    set("allowed_subject_prefixes", "allowedSubjectPrefixes", list(values["subject-prefix"]));
  if (values["access-ttl"] !== undefined)
    set("access_token_ttl", "accessTokenTtl", durationFlag("access-ttl", values["access-ttl"]));
  if (values["idle-ttl"] !== undefined)
    set("refresh_idle_ttl", "refreshIdleTtl", durationFlag("idle-ttl", values["idle-ttl"]));
  if (values["absolute-ttl"] !== undefined)
    set("refresh_absolute_ttl", "refreshAbsoluteTtl", durationFlag("absolute-ttl", values["absolute-ttl"]));
  if (values.grace !== undefined)
    set("refresh_grace_period", "refreshGracePeriod", durationFlag("grace", values.grace));
  if (values["rate-limit"] !== undefined)
    set("rate_limit_per_second", "rateLimitPerSecond", integerFlag("rate-limit", values["rate-limit"]));
  if (values["rate-burst"] !== undefined)
    set("rate_limit_burst", "rateLimitBurst", integerFlag("rate-burst", values["rate-burst"]));
  if (values["jwks-file"] !== undefined) set("jwks", "jwks", jwksFile(values["jwks-file"]));
  if (values["jwks-uri"] !== undefined) set("jwks_uri", "jwksUri", values["jwks-uri"]);
  if (values["federated-issuer"] !== undefined)
    set("federated_issuer", "federatedIssuer", values["federated-issuer"]);
  if (values["federated-subject"] !== undefined)
    set("federated_subject", "federatedSubject", values["federated-subject"]);
  return { req, paths };
}

function jwksFile(path: string): string {
  if (path === "") return "";
  try {
    return readFileSync(path, "utf8").trim();
  } catch (err) {
    throw new UsageError(`--jwks-file: cannot read ${path}: ${(err as Error).message}`);
  }
}

function rateLimitText(c: Client): string {
  if (c.rateLimitPerSecond === 0) return "server defaults";
  const burst = c.rateLimitBurst === 0 ? Math.max(1, c.rateLimitPerSecond) : c.rateLimitBurst;
  return `${c.rateLimitPerSecond}/s per method, burst ${burst}`;
}

const secs = (d: Duration | undefined) => (d ? span(Math.floor(durationMs(d) / 1000)) : "-");

export function clientsTable(clients: readonly Client[]): string {
  return table(
    ["CLIENT ID", "NAME", "ROLES", "ACCESS TTL", "STATUS", "CREATED"],
    clients.map((c) => [
      c.clientId,
      c.name,
      c.roles.map(roleName).join(","),
      secs(c.accessTokenTtl),
      c.disabledAt ? "disabled" : "enabled",
      when(c.createdAt),
    ]),
  );
}

export function clientDetails(c: Client): string {
  return fields([
    ["client id", c.clientId],
    ["name", c.name],
    ["roles", c.roles.map(roleName).join(", ")],
    ["audiences", c.allowedAudiences.join(" ") || "-"],
    ["scopes", c.allowedScopes.join(" ") || "-"],
    ["custom claims", c.allowedClaims.join(" ") || "-"],
    ["tenants", c.allowedTenants.join(" ") || "- (cannot set a tenant)"],
    ["subject prefixes", c.allowedSubjectPrefixes.join(" ") || "- (any subject)"],
    ["access token ttl", secs(c.accessTokenTtl)],
    ["refresh idle ttl", secs(c.refreshIdleTtl)],
    ["refresh absolute", secs(c.refreshAbsoluteTtl)],
    ["refresh grace", secs(c.refreshGracePeriod)],
    ["rate limit", rateLimitText(c)],
    ["created", when(c.createdAt)],
    ["updated", when(c.updatedAt)],
    ["secret rotated", when(c.secretRotatedAt)],
    ["previous secret until", when(c.previousSecretExpiresAt)],
    ["secret", c.hasSecret ? "yes" : "none (assertions only)"],
    [
      "jwks",
      c.jwks === "" ? "-" : `${(JSON.parse(c.jwks) as { keys: unknown[] }).keys.length} key(s) inline`,
    ],
    ["jwks uri", c.jwksUri || "-"],
    ["federated", c.federatedIssuer === "" ? "-" : `${c.federatedSubject} from ${c.federatedIssuer}`],
    ["status", c.disabledAt ? `disabled ${when(c.disabledAt)}: ${c.disabledReason}` : "enabled"],
  ]);
}

export function showSecret(output: Output, client: Client | undefined, secret: string): void {
  if (client) output.out(clientDetails(client));
  if (secret === "") {
    output.err("The client has no secret: it authenticates with client assertions only.");
    return;
  }
  output.out(`\nclient secret: ${secret}`);
  output.err("Store the secret now: Gatehouse keeps only a hash and will not show it again.");
}
