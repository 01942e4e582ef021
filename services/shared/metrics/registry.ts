import { collectDefaultMetrics, Registry } from "prom-client";

/**
 * One Prometheus registry per process component, so tests can run several components in one process
 * without their metrics colliding. Every metric is prefixed `gatehouse_`.
 */
export function createMetricsRegistry(
  component: string,
  options: { defaultMetrics?: boolean } = {},
): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ component });
  if (options.defaultMetrics !== false) collectDefaultMetrics({ register: registry, prefix: "gatehouse_" });
  return registry;
}

export type { Registry };
