import { randomBytes } from "node:crypto";
import type { TokenServiceSettings } from "../../services/token/token-service.ts";

/**
 * A token service configuration for tests: ephemeral loopback ports, a fresh master key, no Redis (so GATEHOUSE_REVOCATION=none),
 * no scheduled rotation, the documented defaults elsewhere. Tests pass only what they are about.
 */
export function testServiceSettings(overrides: Partial<TokenServiceSettings> = {}): TokenServiceSettings {
  return {
    databasePoolSize: 8,
    redisUrl: undefined,
    grpcListen: { host: "127.0.0.1", port: 0 },
    httpListen: { host: "127.0.0.1", port: 0 },
    maxConnections: 10_000,
    h2MaxConcurrentStreams: 1000,
    adminListen: { host: "127.0.0.1", port: 0 },
    grpcReflection: true,
    issuer: "https://auth.test",
    masterKey: randomBytes(32),
    maxAccessTokenTtl: 3_600_000,
    jwksMaxAge: 300_000,
    keyRotation: false,
    keyRotationInterval: 30 * 86_400_000,
    keyPublishDelay: 3_600_000,
    credentialCacheTtl: 30_000,
    revocationStream: "gatehouse:revocations",
    publishTimeout: 500,
    shutdownGrace: 2000,
    revocation: overrides.redisUrl ? "stream" : "none",
    trustedIssuers: [],
    assertionMaxLifetime: 3_600_000,
    assertionClockSkew: 60_000,
    assertionJwksCooldown: 30_000,
    ...overrides,
  };
}
