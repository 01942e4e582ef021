import type { PrismaClient } from "../../gen/prisma/client.ts";
import type { AssertionClientLookup } from "../assertions/assertion-client-lookup.ts";
import type { ClientLookup } from "./client-record.ts";

const RECORD = {
  id: true,
  name: true,
  secretHash: true,
  previousSecretHash: true,
  previousSecretExpiresAt: true,
  roles: true,
  allowedAudiences: true,
  allowedScopes: true,
  allowedClaims: true,
  allowedTenants: true,
  allowedSubjectPrefixes: true,
  accessTokenTtlSeconds: true,
  refreshIdleTtlSeconds: true,
  refreshAbsoluteTtlSeconds: true,
  refreshGraceSeconds: true,
  rateLimitPerSecond: true,
  rateLimitBurst: true,
  disabledAt: true,
} as const;

/** Clients are read through Prisma: the authenticator caches them, so this is off the hot path. */
export function prismaClientLookup(prisma: PrismaClient): ClientLookup {
  return {
    findClient: (id) => prisma.client.findUnique({ where: { id }, select: RECORD }),
  };
}

/** The reads of the assertion authenticator: by id with the client's keys, or by federated identity. */
export function prismaAssertionClientLookup(prisma: PrismaClient): AssertionClientLookup {
  return {
    findKeyedClient: (id) =>
      prisma.client.findUnique({ where: { id }, select: { ...RECORD, jwks: true, jwksUri: true } }),
    findFederatedClient: (issuer, subject) =>
      prisma.client.findUnique({
        where: { federatedIssuer_federatedSubject: { federatedIssuer: issuer, federatedSubject: subject } },
        select: RECORD,
      }),
  };
}
