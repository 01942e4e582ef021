import { Counter, type Registry } from "prom-client";

/** Counts client assertions by trust source and outcome (`ok` or the refusal's error code). */
export interface AssertionMetrics {
  counted(source: "federated" | "private_key_jwt" | "unknown", outcome: string): void;
}

const NAME = "gatehouse_client_assertions_total";

/** Registers `gatehouse_client_assertions_total{source,outcome}` on `registry` (once). */
export function createAssertionMetrics(registry: Registry): AssertionMetrics {
  const counter =
    (registry.getSingleMetric(NAME) as Counter<"source" | "outcome"> | undefined) ??
    new Counter({
      name: NAME,
      help: "Client assertions (RFC 7523) presented, by trust source (unknown before it is known) and outcome: ok or the error code that refused it.",
      labelNames: ["source", "outcome"],
      registers: [registry],
    });
  return {
    counted(source, outcome) {
      counter.inc({ source, outcome });
    },
  };
}
