import { type Duration, durationFromMs, durationMs } from "@bufbuild/protobuf/wkt";
import type { Client, CreateClientRequest } from "../../gen/proto/gatehouse/v1/admin_service_pb.ts";
import { types } from "../../shared/config/index.ts";
import { ENUM_BY_ROLE, ROLE_BY_ENUM } from "../admin/admin-messages.ts";
import type { ClientSettings } from "../admin/client-settings.ts";

/** The CreateClient/UpdateClient request fields a clients file sets. */
export type ClientRequestFields = Partial<Omit<CreateClientRequest, "$typeName" | "$unknown" | "clientId">>;

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
  setting: keyof ClientSettings;
  /** The YAML value as request fields; throws FieldTypeError for a value of the wrong type. */
  read(value: unknown): ClientRequestFields;
  /** The stored value as a Client message shows it, in ClientSettings' form. */
  current(c: Client): ClientSettings[keyof ClientSettings];
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
];

/** The YAML key of a proto field, to name it in a refusal. */
export function keyOfPath(path: string): string | undefined {
  return CLIENT_FILE_FIELDS.find((f) => f.path === path)?.key;
}

/** A client's settings as a Client message shows them. */
export function settingsOfMessage(c: Client): ClientSettings {
  const s = {} as Record<string, unknown>;
  for (const f of CLIENT_FILE_FIELDS) s[f.setting] = f.current(c);
  return s as unknown as ClientSettings;
}
