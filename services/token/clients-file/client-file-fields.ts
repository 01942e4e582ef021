import { type Duration, durationFromMs, durationMs } from "@bufbuild/protobuf/wkt";
import type { Client, CreateClientRequest } from "../../gen/proto/gatehouse/v1/admin_service_pb.ts";
import { fingerprint } from "../../shared/logging/fingerprint.ts";
import { types } from "../../shared/settings/index.ts";
import { ENUM_BY_ROLE, ROLE_BY_ENUM } from "../admin/admin-messages.ts";
import type { ClientSettings } from "../admin/client-settings.ts";
import type { ClientTrust } from "../admin/client-trust.ts";

/** The CreateClient/UpdateClient request fields a clients file sets. */
export type ClientRequestFields = Partial<Omit<CreateClientRequest, "$typeName" | "$unknown" | "clientId">>;

/** Everything a clients file declares about a client, as `clients apply` compares it. */
export type ClientFileState = ClientSettings & ClientTrust;

/** A value of the wrong type: the message completes "key ..." (the caller names file and client). */
export class FieldTypeError extends Error {
  override readonly name = "FieldTypeError";
}

/**
 * One setting a clients file may hold: its YAML key, the AdminService field (and update_mask path) it
 * sets, and where the stored value lives. Adding a client setting to `clients apply` is one row here;
 * its rules stay in client-settings.ts, which validates the file as it validates every request.
 */
export interface ClientFileField {
  key: string;
  /** The proto field name, also the update_mask path. */
  path: string;
  setting: keyof ClientFileState;
  /** The YAML value as request fields; throws FieldTypeError for a value of the wrong type. */
  read(value: unknown): ClientRequestFields;
  /** The stored value as a Client message shows it, in ClientFileState's form. */
  current(c: Client): ClientFileState[keyof ClientFileState];
  /** How a diff shows a value too long for one line. */
  show?(value: ClientFileState[keyof ClientFileState]): string;
}

function strings(value: unknown): string[] {
  if (!Array.isArray(value) || !value.every((v) => typeof v === "string")) {
    throw new FieldTypeError("must be a list of strings");
  }
  return value;
}

function duration(value: unknown): Duration {
  const parsed = typeof value === "string" ? types.duration().safeParse(value) : undefined;
  if (!parsed?.success) throw new FieldTypeError("must be a duration such as 30s, 10m, 1h or 14d");
  return durationFromMs(parsed.data);
}

const seconds = (d: Duration | undefined) => (d ? Math.floor(durationMs(d) / 1000) : 0);

const list = (
  key: string,
  path: string,
  setting:
    | "allowedAudiences"
    | "allowedScopes"
    | "allowedClaims"
    | "allowedTenants"
    | "allowedSubjectPrefixes",
): ClientFileField => ({
  key,
  path,
  setting,
  read: (v) => ({ [setting]: strings(v) }),
  current: (c) => [...c[setting]],
});

const lifetime = (
  key: string,
  path: string,
  field: "accessTokenTtl" | "refreshIdleTtl" | "refreshAbsoluteTtl" | "refreshGracePeriod",
  setting:
    | "accessTokenTtlSeconds"
    | "refreshIdleTtlSeconds"
    | "refreshAbsoluteTtlSeconds"
    | "refreshGraceSeconds",
): ClientFileField => ({
  key,
  path,
  setting,
  read: (v) => ({ [field]: duration(v) }),
  current: (c) => seconds(c[field]),
});

/** JSON with every object's keys sorted: equal documents give equal text, however they were written. */
function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v !== null && typeof v === "object" && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v,
  );
}

/**
 * A stored JWKS in the form a file's compares with: canonical, so a set registered over the
 * AdminService with other spacing or key order is not a change. Text that is not JSON stays as is
 * (it differs from any file's, and the update then replaces it).
 */
function canonicalJwks(text: string | null): string | null {
  if (text === null || text === "") return null;
  try {
    return canonicalJson(JSON.parse(text));
  } catch {
    return text;
  }
}

/** A stored trust as `clients apply` compares it. */
export function trustState(t: ClientTrust): ClientTrust {
  return { ...t, jwks: canonicalJwks(t.jwks) };
}

/** A JWKS in a diff: its key ids and a fingerprint, so a changed key under the same kid shows. */
function showJwks(value: unknown): string {
  if (typeof value !== "string") return "none";
  let kids = "";
  try {
    const keys = (JSON.parse(value) as { keys?: { kid?: unknown }[] }).keys ?? [];
    kids = keys.map((k) => (typeof k.kid === "string" ? k.kid : "(no kid)")).join(", ");
  } catch {
    kids = "not JSON";
  }
  return `[${kids}] sha256:${fingerprint(value)}`;
}

/** A trust field held as text; empty in a Client message means unset. */
const trustText = (
  key: string,
  field: "jwksUri" | "federatedIssuer" | "federatedSubject",
): ClientFileField => ({
  key,
  path: key,
  setting: field,
  read: (v) => {
    if (typeof v !== "string" || v === "") throw new FieldTypeError("must be a non-empty string");
    return { [field]: v };
  },
  current: (c) => (c[field] === "" ? null : c[field]),
  show: (v) => (v === null ? "none" : String(v)),
});

/** Every client setting a clients file may hold, in the order a diff lists them. */
export const CLIENT_FILE_FIELDS: readonly ClientFileField[] = [
  {
    key: "name",
    path: "name",
    setting: "name",
    read: (v) => {
      if (typeof v !== "string") throw new FieldTypeError("must be a string");
      return { name: v };
    },
    current: (c) => c.name,
  },
  {
    key: "roles",
    path: "roles",
    setting: "roles",
    read: (v) => {
      const names = strings(v);
      const unknown = names.find((n) => !ENUM_BY_ROLE.has(n));
      if (unknown !== undefined) {
        throw new FieldTypeError(
          `has an unknown role "${unknown}" (one of ${[...ENUM_BY_ROLE.keys()].join(", ")})`,
        );
      }
      return { roles: names.map((n) => ENUM_BY_ROLE.get(n)!) };
    },
    current: (c) => c.roles.flatMap((r) => ROLE_BY_ENUM.get(r) ?? []),
  },
  list("audiences", "allowed_audiences", "allowedAudiences"),
  list("scopes", "allowed_scopes", "allowedScopes"),
  list("claims", "allowed_claims", "allowedClaims"),
  list("tenants", "allowed_tenants", "allowedTenants"),
  list("subject_prefixes", "allowed_subject_prefixes", "allowedSubjectPrefixes"),
  lifetime("access_token_ttl", "access_token_ttl", "accessTokenTtl", "accessTokenTtlSeconds"),
  lifetime("refresh_idle_ttl", "refresh_idle_ttl", "refreshIdleTtl", "refreshIdleTtlSeconds"),
  lifetime("refresh_absolute_ttl", "refresh_absolute_ttl", "refreshAbsoluteTtl", "refreshAbsoluteTtlSeconds"),
  lifetime("refresh_grace", "refresh_grace_period", "refreshGracePeriod", "refreshGraceSeconds"),
  {
    key: "rate_limit_per_second",
    path: "rate_limit_per_second",
    setting: "rateLimitPerSecond",
    read: (v) => {
      if (!Number.isSafeInteger(v))
        throw new FieldTypeError("must be a whole number (0: the server default)");
      return { rateLimitPerSecond: v as number };
    },
    current: (c) => (c.rateLimitPerSecond === 0 ? null : c.rateLimitPerSecond),
  },
  {
    key: "rate_limit_burst",
    path: "rate_limit_burst",
    setting: "rateLimitBurst",
    read: (v) => {
      if (!Number.isSafeInteger(v)) throw new FieldTypeError("must be a whole number (0: the rate)");
      return { rateLimitBurst: v as number };
    },
    current: (c) => (c.rateLimitBurst === 0 ? null : c.rateLimitBurst),
  },
  {
    // An object in YAML (a JWK Set reads best as one); sent and stored as canonical JSON text.
    key: "jwks",
    path: "jwks",
    setting: "jwks",
    read: (v) => {
      if (v === null || typeof v !== "object" || Array.isArray(v)) {
        throw new FieldTypeError('must be a JWK Set: a map with a "keys" list');
      }
      return { jwks: canonicalJson(v) };
    },
    current: (c) => canonicalJwks(c.jwks),
    show: showJwks,
  },
  trustText("jwks_uri", "jwksUri"),
  trustText("federated_issuer", "federatedIssuer"),
  trustText("federated_subject", "federatedSubject"),
];

/** The YAML key of a proto field, to name it in a refusal. */
export function keyOfPath(path: string): string | undefined {
  return CLIENT_FILE_FIELDS.find((f) => f.path === path)?.key;
}

/** A client's settings and trust as a Client message shows them. */
export function settingsOfMessage(c: Client): ClientFileState {
  const s = {} as Record<string, unknown>;
  for (const f of CLIENT_FILE_FIELDS) s[f.setting] = f.current(c);
  return s as unknown as ClientFileState;
}
