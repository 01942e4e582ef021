import { SettingsError } from "../../shared/settings/settings.ts";

/** Where a sidecar's revocation state comes from: a followed stream, or nowhere (by choice). */
export type RevocationSource = "stream" | "none";

/**
 * Checks the `GATEHOUSE_REVOCATION` setting against whether a revocation stream is configured
 * (REDIS_URL or REDIS_SENTINELS, or a state handed to `startSidecar`). A sidecar that follows no stream accepts a
 * revoked token until it expires, so it runs only when told that is intended; and one told `none`
 * while a stream is configured is left to the operator to settle rather than guessed at.
 */
export function revocationSourceOf(setting: RevocationSource, streamConfigured: boolean): RevocationSource {
  if (setting === "stream" && !streamConfigured) {
    throw new SettingsError(
      "GATEHOUSE_REVOCATION",
      "no revocation stream to follow: set REDIS_URL (or REDIS_SENTINELS), or GATEHOUSE_REVOCATION=none to run without one (revoked tokens then pass until they expire)",
    );
  }
  if (setting === "none" && streamConfigured) {
    throw new SettingsError(
      "GATEHOUSE_REVOCATION",
      "is none but a revocation stream is configured (REDIS_URL or REDIS_SENTINELS): unset one of them",
    );
  }
  return setting;
}
