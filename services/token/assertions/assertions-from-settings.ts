import type { PrismaClient } from "../../gen/prisma/client.ts";
import type { Logger } from "../../shared/logging/index.ts";
import type { Registry } from "../../shared/metrics/index.ts";
import { prismaAssertionClientLookup } from "../clients/prisma-client-lookup.ts";
import { OAUTH_PATHS } from "../oauth/server-metadata.ts";
import type { SqlExecutor } from "../store/sql-executor.ts";
import { type AssertionAuthenticator, createAssertionAuthenticator } from "./assertion-authenticator.ts";
import { createAssertionMetrics } from "./assertion-metrics.ts";
import { createClientKeySets } from "./client-key-sets.ts";
import { postgresJtiReplayStore } from "./jti-replay-store.ts";
import { createTrustedIssuerKeys, type TrustedIssuer } from "./trusted-issuers.ts";

export interface AssertionSettings {
  issuer: string;
  trustedIssuers: readonly TrustedIssuer[];
  assertionMaxLifetime: number;
  assertionClockSkew: number;
  assertionJwksCooldown: number;
}

/**
 * The token service's assertion authenticator: `aud` may be our issuer or our token endpoint
 * (RFC 7523 §3), trusted issuers' key sets are fetched from start-up on.
 */
export function assertionAuthenticatorFromSettings(
  settings: AssertionSettings,
  io: { prisma: PrismaClient; db: SqlExecutor; metrics: Registry; logger: Logger; now: () => number },
): AssertionAuthenticator {
  const jwksLog = io.logger.child({ component: "assertion-jwks" });
  const cooldownMs = settings.assertionJwksCooldown;
  return createAssertionAuthenticator({
    clients: prismaAssertionClientLookup(io.prisma),
    issuerKeys: createTrustedIssuerKeys(settings.trustedIssuers, { logger: jwksLog, cooldownMs }),
    clientKeys: createClientKeySets({ logger: jwksLog, cooldownMs }),
    replay: postgresJtiReplayStore(io.db),
    audiences: [settings.issuer, `${settings.issuer.replace(/\/+$/, "")}${OAUTH_PATHS.token}`],
    maxLifetimeMs: settings.assertionMaxLifetime,
    clockSkewMs: settings.assertionClockSkew,
    metrics: createAssertionMetrics(io.metrics),
    log: io.logger,
    now: io.now,
  });
}
