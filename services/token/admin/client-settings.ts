import { randomBytes } from "node:crypto";
import type { Duration } from "@bufbuild/protobuf/wkt";
import { durationMs } from "@bufbuild/protobuf/wkt";
import type {
  ClientRole,
  CreateClientRequest,
  UpdateClientRequest,
} from "../../gen/proto/gatehouse/v1/admin_service_pb.ts";
import { GatehouseError } from "../../shared/errors/gatehouse-error.ts";
import { ANY_TENANT } from "../flows/client-allow-lists.ts";
import { checkList, checkText, LIMITS } from "../flows/request-limits.ts";
import { MAY_ACT_CLAIM, RESERVED_CLAIMS } from "../tokens/access-token-claims.ts";
import { ROLE_BY_ENUM } from "./admin-messages.ts";
import { TRUST_FIELDS } from "./client-trust.ts";

/**
 * A client's settings as stored, and the rules an admin's request must pass to change them. Pure:
 * the handlers read the row, call these, and write what they return.
 */
export interface ClientSettings {
  name: string;
  roles: string[];
  allowedAudiences: string[];
  allowedScopes: string[];
  allowedClaims: string[];
  allowedTenants: string[];
  allowedSubjectPrefixes: string[];
  accessTokenTtlSeconds: number;
  refreshIdleTtlSeconds: number;
  refreshAbsoluteTtlSeconds: number;
  refreshGraceSeconds: number;
  rateLimitPerSecond: number | null;
  rateLimitBurst: number | null;
}

const MINUTE = 60;
const HOUR = 3600;
const DAY = 86_400;

/** The documented defaults (admin_service.proto, Client); the table defaults in schema.prisma match. */
export const CLIENT_DEFAULTS = {
  accessTokenTtlSeconds: 10 * MINUTE,
  refreshIdleTtlSeconds: 14 * DAY,
  refreshAbsoluteTtlSeconds: 90 * DAY,
  refreshGraceSeconds: 10,
} as const;

/** 3-64 characters: lower-case letters, digits, '.', '_' and '-', starting with a letter. */
const CLIENT_ID = /^[a-z][a-z0-9._-]{2,63}$/;

function invalid(field: string, problem: string): GatehouseError {
  return new GatehouseError("invalid_request", `${field} ${problem}`, { metadata: { field } });
}

export function checkClientId(id: string, field = "client_id"): string {
  if (id === "") throw invalid(field, "is required");
  if (!CLIENT_ID.test(id)) {
    throw invalid(
      field,
      "must be 3-64 characters of lower-case letters, digits, '.', '_' and '-', starting with a letter",
    );
  }
  return id;
}

/** 32-256 printable ASCII characters: as hard to guess as a generated secret can be asked to be. */
const CHOSEN_SECRET = /^[\x21-\x7e]{32,256}$/;

/** A secret the caller chose (a clients file's `secret_from_env`) instead of a generated one. */
export function checkChosenSecret(secret: string): string {
  if (!CHOSEN_SECRET.test(secret)) {
    throw invalid("client_secret", "must be 32-256 printable ASCII characters without spaces");
  }
  return secret;
}

/** A random client id for CreateClient without one. */
export function generateClientId(): string {
  return `client-${randomBytes(6).toString("hex")}`;
}

/** The request fields CreateClient and UpdateClient share. */
type Fields = Pick<
  CreateClientRequest,
  | "name"
  | "roles"
  | "allowedAudiences"
  | "allowedScopes"
  | "allowedClaims"
  | "allowedTenants"
  | "allowedSubjectPrefixes"
  | "accessTokenTtl"
  | "refreshIdleTtl"
  | "refreshAbsoluteTtl"
  | "refreshGracePeriod"
  | "rateLimitPerSecond"
  | "rateLimitBurst"
>;

function seconds(
  field: string,
  value: Duration | undefined,
  bounds: { min: number; max: number; unset: number },
  describe: string,
): number {
  if (value === undefined) return bounds.unset;
  const ms = durationMs(value);
  if (!(ms >= bounds.min * 1000 && ms <= bounds.max * 1000)) throw invalid(field, `must be ${describe}`);
  return Math.floor(ms / 1000);
}

function roles(values: readonly ClientRole[]): string[] {
  if (values.length === 0) throw invalid("roles", "must name at least one role");
  const out: string[] = [];
  for (const v of values) {
    const name = ROLE_BY_ENUM.get(v);
    if (name === undefined) throw invalid("roles", `has an unknown role (${v})`);
    if (!out.includes(name)) out.push(name);
  }
  return out;
}

function claims(values: readonly string[]): string[] {
  const names = checkList("allowed_claims", values, 64, 128);
  const reserved = names.filter((n) => RESERVED_CLAIMS.has(n) && n !== MAY_ACT_CLAIM);
  if (reserved.length > 0) throw invalid("allowed_claims", `names reserved claims: ${reserved.join(" ")}`);
  return names;
}

function tenants(values: readonly string[]): string[] {
  const names = checkList("allowed_tenants", values, 64, LIMITS.tenant);
  if (names.includes(ANY_TENANT) && names.length > 1) {
    throw invalid("allowed_tenants", `"${ANY_TENANT}" allows every tenant and must stand alone`);
  }
  return names;
}

/** The bound the service-wide `GATEHOUSE_RATE_LIMIT_*` settings have too. */
const MAX_RATE = 1_000_000;

/** 0 stores null: the server default (a rate) or the rate itself (a burst). */
function rateField(field: string, value: number): number | null {
  if (!(value >= 0 && value <= MAX_RATE)) throw invalid(field, `must be between 0 and ${MAX_RATE}`);
  return value === 0 ? null : value;
}

type Setter = (f: Fields, maxAccessTtlSeconds: number) => Partial<ClientSettings>;

/** One setter per field an update_mask may name, keyed by the proto field name. */
const SETTERS: Record<string, Setter> = {
  name: (f) => ({ name: checkText("name", f.name, 128, { required: true }) }),
  roles: (f) => ({ roles: roles(f.roles) }),
  allowed_audiences: (f) => ({
    allowedAudiences: checkList("allowed_audiences", f.allowedAudiences, 64, 256),
  }),
  allowed_scopes: (f) => ({ allowedScopes: checkList("allowed_scopes", f.allowedScopes, 256, 128) }),
  allowed_claims: (f) => ({ allowedClaims: claims(f.allowedClaims) }),
  allowed_tenants: (f) => ({ allowedTenants: tenants(f.allowedTenants) }),
  allowed_subject_prefixes: (f) => ({
    allowedSubjectPrefixes: checkList("allowed_subject_prefixes", f.allowedSubjectPrefixes, 16, 128),
  }),
  access_token_ttl: (f, max) => {
    const upper = Math.min(HOUR, max);
    return {
      accessTokenTtlSeconds: seconds(
        "access_token_ttl",
        f.accessTokenTtl,
        { min: MINUTE, max: upper, unset: Math.min(CLIENT_DEFAULTS.accessTokenTtlSeconds, upper) },
        `between 1 minute and ${upper / 60} minutes (GATEHOUSE_MAX_ACCESS_TOKEN_TTL)`,
      ),
    };
  },
  refresh_idle_ttl: (f) => ({
    refreshIdleTtlSeconds: seconds(
      "refresh_idle_ttl",
      f.refreshIdleTtl,
      { min: HOUR, max: 365 * DAY, unset: CLIENT_DEFAULTS.refreshIdleTtlSeconds },
      "between 1 hour and refresh_absolute_ttl",
    ),
  }),
  refresh_absolute_ttl: (f) => ({
    refreshAbsoluteTtlSeconds: seconds(
      "refresh_absolute_ttl",
      f.refreshAbsoluteTtl,
      { min: HOUR, max: 365 * DAY, unset: CLIENT_DEFAULTS.refreshAbsoluteTtlSeconds },
      "between 1 hour and 365 days",
    ),
  }),
  refresh_grace_period: (f) => ({
    refreshGraceSeconds: seconds(
      "refresh_grace_period",
      f.refreshGracePeriod,
      { min: 0, max: 60, unset: CLIENT_DEFAULTS.refreshGraceSeconds },
      "between 0 and 60 seconds",
    ),
  }),
  rate_limit_per_second: (f) => ({
    rateLimitPerSecond: rateField("rate_limit_per_second", f.rateLimitPerSecond),
  }),
  rate_limit_burst: (f) => ({ rateLimitBurst: rateField("rate_limit_burst", f.rateLimitBurst) }),
};

function checkSettings(s: ClientSettings): ClientSettings {
  if (s.refreshIdleTtlSeconds > s.refreshAbsoluteTtlSeconds) {
    throw invalid("refresh_idle_ttl", "must not be longer than refresh_absolute_ttl");
  }
  // A burst sizes the client's own bucket; the service-wide limits carry their own bursts.
  if (s.rateLimitBurst !== null && s.rateLimitPerSecond === null) {
    throw invalid(
      "rate_limit_burst",
      "needs rate_limit_per_second: the server defaults have their own bursts",
    );
  }
  return s;
}

/** CreateClient's request as the settings to store, every default filled in. */
export function settingsForCreate(req: Fields, maxAccessTtlSeconds: number): ClientSettings {
  const s = {} as ClientSettings;
  for (const set of Object.values(SETTERS)) Object.assign(s, set(req, maxAccessTtlSeconds));
  return checkSettings(s);
}

/** UpdateClient: the current settings with the fields named in update_mask replaced. */
export function settingsForUpdate(
  current: ClientSettings,
  req: Fields & Pick<UpdateClientRequest, "updateMask">,
  maxAccessTtlSeconds: number,
): { settings: ClientSettings; changed: string[] } {
  const paths = req.updateMask?.paths ?? [];
  if (paths.length === 0) throw invalid("update_mask", "is required: name the fields to change");
  const next = { ...current };
  const changed: string[] = [];
  for (const path of paths) {
    if (path === "client_id") throw invalid("update_mask", "cannot change client_id");
    if (TRUST_FIELDS.includes(path)) {
      // Validated by client-trust.ts (trustForUpdate); named here so the change is audited.
      if (!changed.includes(path)) changed.push(path);
      continue;
    }
    const set = SETTERS[path];
    if (!set) throw invalid("update_mask", `names an unknown field "${path}"`);
    Object.assign(next, set(req, maxAccessTtlSeconds));
    if (!changed.includes(path)) changed.push(path);
  }
  return { settings: checkSettings(next), changed };
}

/** The settings a stored client row has now. */
export function settingsOf(row: ClientSettings): ClientSettings {
  return {
    name: row.name,
    roles: row.roles,
    allowedAudiences: row.allowedAudiences,
    allowedScopes: row.allowedScopes,
    allowedClaims: row.allowedClaims,
    allowedTenants: row.allowedTenants,
    allowedSubjectPrefixes: row.allowedSubjectPrefixes,
    accessTokenTtlSeconds: row.accessTokenTtlSeconds,
    refreshIdleTtlSeconds: row.refreshIdleTtlSeconds,
    refreshAbsoluteTtlSeconds: row.refreshAbsoluteTtlSeconds,
    refreshGraceSeconds: row.refreshGraceSeconds,
    rateLimitPerSecond: row.rateLimitPerSecond,
    rateLimitBurst: row.rateLimitBurst,
  };
}
