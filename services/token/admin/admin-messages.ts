import type { JsonObject, MessageInitShape } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { AuditEvent as AuditRow, Client as ClientRow } from "../../gen/prisma/client.ts";
import {
  type AuditEventSchema,
  AuditOutcome,
  ClientRole,
  type ClientSchema,
  SigningAlgorithm,
  type SigningKeySchema,
  SigningKeyStatus,
} from "../../gen/proto/gatehouse/v1/admin_service_pb.ts";
import type { ClientRole as RoleName } from "../clients/caller-roles.ts";
import type { SigningAlgorithm as AlgorithmName } from "../keys/signing-key-material.ts";
import type { SigningKeyRecord } from "../keys/signing-keys.ts";

/** Stored role names and their proto enum values. */
export const ROLE_BY_ENUM: ReadonlyMap<ClientRole, RoleName> = new Map([
  [ClientRole.ISSUER, "issuer"],
  [ClientRole.SERVICE, "service"],
  [ClientRole.REVOKER, "revoker"],
  [ClientRole.INTROSPECTOR, "introspector"],
  [ClientRole.ADMIN, "admin"],
]);
export const ENUM_BY_ROLE: ReadonlyMap<string, ClientRole> = new Map(
  [...ROLE_BY_ENUM].map(([k, v]) => [v as string, k]),
);

export const ALGORITHM_BY_ENUM: ReadonlyMap<SigningAlgorithm, AlgorithmName> = new Map([
  [SigningAlgorithm.EDDSA, "EdDSA"],
  [SigningAlgorithm.ES256, "ES256"],
  [SigningAlgorithm.RS256, "RS256"],
]);
const ENUM_BY_ALGORITHM = new Map([...ALGORITHM_BY_ENUM].map(([k, v]) => [v as string, k]));

const STATUS: Record<string, SigningKeyStatus> = {
  staged: SigningKeyStatus.STAGED,
  active: SigningKeyStatus.ACTIVE,
  retiring: SigningKeyStatus.RETIRING,
  retired: SigningKeyStatus.RETIRED,
  revoked: SigningKeyStatus.REVOKED,
};

const OUTCOME: Record<string, AuditOutcome> = {
  success: AuditOutcome.SUCCESS,
  denied: AuditOutcome.DENIED,
  failed: AuditOutcome.FAILURE,
};

const ts = (d: Date | null) => (d ? timestampFromDate(d) : undefined);

/** A client row as the API shows it: never its secret hashes. */
export function clientMessage(row: ClientRow): MessageInitShape<typeof ClientSchema> {
  return {
    clientId: row.id,
    name: row.name,
    roles: row.roles.flatMap((r) => ENUM_BY_ROLE.get(r) ?? []),
    allowedAudiences: row.allowedAudiences,
    allowedScopes: row.allowedScopes,
    allowedClaims: row.allowedClaims,
    allowedTenants: row.allowedTenants,
    allowedSubjectPrefixes: row.allowedSubjectPrefixes,
    accessTokenTtl: durationFromMs(row.accessTokenTtlSeconds * 1000),
    refreshIdleTtl: durationFromMs(row.refreshIdleTtlSeconds * 1000),
    refreshAbsoluteTtl: durationFromMs(row.refreshAbsoluteTtlSeconds * 1000),
    refreshGracePeriod: durationFromMs(row.refreshGraceSeconds * 1000),
    rateLimitPerSecond: row.rateLimitPerSecond ?? 0,
    rateLimitBurst: row.rateLimitBurst ?? 0,
    createdAt: ts(row.createdAt),
    updatedAt: ts(row.updatedAt),
    disabledAt: ts(row.disabledAt),
    disabledReason: row.disabledReason ?? "",
    secretRotatedAt: row.secretHash === null ? undefined : ts(row.secretRotatedAt ?? row.createdAt),
    previousSecretExpiresAt: ts(row.previousSecretExpiresAt),
    jwks: row.jwks ?? "",
    jwksUri: row.jwksUri ?? "",
    federatedIssuer: row.federatedIssuer ?? "",
    federatedSubject: row.federatedSubject ?? "",
    hasSecret: row.secretHash !== null,
  };
}

/** A key as the API shows it: public JWK and lifecycle times, never private material. */
export function signingKeyMessage(row: SigningKeyRecord): MessageInitShape<typeof SigningKeySchema> {
  const jwk = row.publicJwk as Record<string, string | undefined>;
  return {
    kid: row.kid,
    algorithm: ENUM_BY_ALGORITHM.get(row.algorithm) ?? SigningAlgorithm.UNSPECIFIED,
    status: STATUS[row.status] ?? SigningKeyStatus.UNSPECIFIED,
    publicJwk: {
      kty: jwk.kty ?? "",
      kid: jwk.kid ?? row.kid,
      use: jwk.use ?? "sig",
      alg: jwk.alg ?? row.algorithm,
      crv: jwk.crv ?? "",
      x: jwk.x ?? "",
      y: jwk.y ?? "",
      n: jwk.n ?? "",
      e: jwk.e ?? "",
    },
    createdAt: ts(row.createdAt),
    activatedAt: ts(row.activatedAt),
    retiringAt: ts(row.retiringAt),
    retiredAt: ts(row.retiredAt),
    revokedAt: ts(row.revokedAt),
    revokedReason: row.revokedReason ?? "",
    published: row.status === "staged" || row.status === "active" || row.status === "retiring",
  };
}

export function auditEventMessage(row: AuditRow): MessageInitShape<typeof AuditEventSchema> {
  const details = row.details;
  return {
    id: row.id.toString(),
    occurredAt: timestampFromDate(row.occurredAt),
    actor: row.actor,
    action: row.action,
    targetType: row.targetType ?? "",
    targetId: row.targetId ?? "",
    subject: row.subject ?? "",
    clientId: row.clientId ?? "",
    requestId: row.requestId ?? "",
    outcome: OUTCOME[row.outcome] ?? AuditOutcome.UNSPECIFIED,
    ...(details !== null && typeof details === "object" && !Array.isArray(details)
      ? { details: details as JsonObject }
      : {}),
  };
}
