import { Counter, type Registry } from "prom-client";

/** `rate`: a service-wide `GATEHOUSE_RATE_LIMIT_*`; `client_rate`: the client's own limit. */
type OverloadLimitKind = "rate" | "concurrency" | "client_rate";

/** Counts refused calls; `client` is an authenticated client id, so the label set stays bounded. */
export interface OverloadMetrics {
  rejected(clientId: string, method: string, limit: OverloadLimitKind): void;
}

const REJECTIONS = "gatehouse_overload_rejections_total";

/** Registers `gatehouse_overload_rejections_total{client,method,limit}` on `registry` (once). */
export function createOverloadMetrics(registry: Registry): OverloadMetrics {
  const counter =
    (registry.getSingleMetric(REJECTIONS) as Counter<"client" | "method" | "limit"> | undefined) ??
    new Counter({
      name: REJECTIONS,
      help: "Calls refused with RESOURCE_EXHAUSTED (rate_limited), by client, method and which limit refused them.",
      labelNames: ["client", "method", "limit"],
      registers: [registry],
    });
  return {
    rejected(client, method, limit) {
      counter.inc({ client, method, limit });
    },
  };
}

export const NO_OVERLOAD_METRICS: OverloadMetrics = { rejected() {} };
