import type { Registry } from "prom-client";
import type { SettingsOf } from "../../shared/settings/index.ts";
import { tokenServiceSettings } from "../token-service-settings.ts";
import { createOverloadGuard, type OverloadGuard } from "./overload-guard.ts";
import { createOverloadMetrics } from "./overload-metrics.ts";

const KEYS = [
  "rateLimitIssue",
  "rateLimitRefresh",
  "rateLimitIntrospect",
  "rateLimitRevoke",
  "maxInFlightPerClient",
  "rateLimitExchange",
] as const;

/** The token-service settings this module reads; any left out take their documented default. */
export type OverloadSettings = Partial<Pick<SettingsOf<typeof tokenServiceSettings>, (typeof KEYS)[number]>>;
export type OverloadSettingKey = (typeof KEYS)[number];

function defaultOf<K extends OverloadSettingKey>(key: K): NonNullable<OverloadSettings[K]> {
  const s = tokenServiceSettings[key];
  return s.schema.parse(s.default) as NonNullable<OverloadSettings[K]>;
}

/**
 * The token service's guard: Issue, Refresh, Introspect and Exchange rate limits, and the in-flight
 * cap. IssueServiceToken has no service-wide rate limit, but a client's own limit covers it too.
 */
export function overloadGuardFromSettings(settings: OverloadSettings, registry: Registry): OverloadGuard {
  return createOverloadGuard({
    rateLimits: {
      Issue: settings.rateLimitIssue ?? defaultOf("rateLimitIssue"),
      Refresh: settings.rateLimitRefresh ?? defaultOf("rateLimitRefresh"),
      Introspect: settings.rateLimitIntrospect ?? defaultOf("rateLimitIntrospect"),
      Exchange: settings.rateLimitExchange ?? defaultOf("rateLimitExchange"),
      IssueServiceToken: "off",
    },
    maxInFlightPerClient: settings.maxInFlightPerClient ?? defaultOf("maxInFlightPerClient"),
    // Wall time, never the service's injectable token clock: tests freeze that one.
    metrics: createOverloadMetrics(registry),
  });
}

/** Revoke's rate limit alone: no in-flight cap, so a revocation is refused only for its rate. */
export function revokeGuardFromSettings(settings: OverloadSettings, registry: Registry): OverloadGuard {
  return createOverloadGuard({
    rateLimits: { Revoke: settings.rateLimitRevoke ?? defaultOf("rateLimitRevoke") },
    maxInFlightPerClient: "off",
    metrics: createOverloadMetrics(registry),
  });
}
