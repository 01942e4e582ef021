import type { PrismaClient } from "../../gen/prisma/client.ts";
import type { ClientLookup } from "./client-record.ts";

/** Clients are read through Prisma: the authenticator caches them, so this is off the hot path. */
export function prismaClientLookup(prisma: PrismaClient): ClientLookup {
  return {
    findClient: (id) =>
      prisma.client.findUnique({
        where: { id },
        select: {
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
          disabledAt: true,
        },
      }),
  };
}
