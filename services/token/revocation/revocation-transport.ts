import { Gauge, type Registry } from "prom-client";
import { SettingsError } from "../../shared/settings/settings.ts";

/** Where the token service publishes revocations: a stream sidecars follow, or nowhere (by choice). */
export type RevocationTransport = "stream" | "none";

/**
 * Checks `GATEHOUSE_REVOCATION` (the sidecar's setting, same values) against what the service can
 * publish to. Without a stream a revoked token stays valid at every sidecar until it expires, so
 * the service runs so only when told that is intended; `gatehouse dev` hands it an in-process
 * stream. `none` beside REDIS_URL or REDIS_SENTINELS is left to the operator to settle rather than guessed at.
 */
export function revocationTransportOf(
  setting: RevocationTransport,
  redisConfigured: boolean,
  busGiven: boolean,
): RevocationTransport {
  if (setting === "none" && redisConfigured) {
    throw new SettingsError(
      "GATEHOUSE_REVOCATION",
      "is none but REDIS_URL (or REDIS_SENTINELS) is set: unset one of them",
    );
  }
  if (redisConfigured || busGiven) return "stream";
  if (setting === "stream") {
    throw new SettingsError(
      "GATEHOUSE_REVOCATION",
      "no revocation stream to publish to: set REDIS_URL (or REDIS_SENTINELS), or GATEHOUSE_REVOCATION=none to run without one (sidecars then accept revoked tokens until they expire)",
    );
  }
  return "none";
}

/** `gatehouse_token_revocation_transport{transport}` = 1: a service that publishes nowhere shows on a dashboard. */
export function registerRevocationTransport(registry: Registry, transport: RevocationTransport): void {
  new Gauge({
    name: "gatehouse_token_revocation_transport",
    help: "1 for where revocations are published: stream, or none (sidecars accept revoked tokens until they expire).",
    labelNames: ["transport"] as const,
    registers: [registry],
  }).set({ transport }, 1);
}
