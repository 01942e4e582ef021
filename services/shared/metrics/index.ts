export type { Registry } from "./registry.ts";
export { createMetricsRegistry } from "./registry.ts";
