import { Counter, Histogram, type Registry } from "prom-client";
import { GrpcCode } from "../errors/status-map.ts";
import type { RpcProtocol } from "./call-context.ts";

/** Per-call instruments shared by the gRPC and Connect adapters. */
export interface RpcMetrics {
  /** One finished call: duration, outcome, and for failures the error reason. */
  record(
    service: string,
    method: string,
    protocol: RpcProtocol,
    code: GrpcCode,
    seconds: number,
    reason?: string,
  ): void;
}

const DURATION = "gatehouse_rpc_duration_seconds";
const ERRORS = "gatehouse_rpc_errors_total";

/** Sub-millisecond to seconds: unary calls here are mostly 0.1-10 ms. */
const BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10];

/** "OK", "INVALID_ARGUMENT", ... by numeric code: the label values grpc-prometheus uses. */
const CODE_NAMES: readonly string[] = (() => {
  const names: string[] = [];
  for (const [name, value] of Object.entries(GrpcCode)) names[value] = name;
  return names;
})();

/**
 * Registers `gatehouse_rpc_duration_seconds{service,method,protocol,code}` and
 * `gatehouse_rpc_errors_total{service,method,reason}` on `registry` (or reuses them when another
 * listener of the same process registered them first). A successful call costs one `observe`.
 */
export function createRpcMetrics(registry: Registry): RpcMetrics {
  const duration =
    (registry.getSingleMetric(DURATION) as
      | Histogram<"service" | "method" | "protocol" | "code">
      | undefined) ??
    new Histogram({
      name: DURATION,
      help: "Duration of unary RPCs handled, by outcome code.",
      labelNames: ["service", "method", "protocol", "code"],
      buckets: BUCKETS,
      registers: [registry],
    });
  const errors =
    (registry.getSingleMetric(ERRORS) as Counter<"service" | "method" | "reason"> | undefined) ??
    new Counter({
      name: ERRORS,
      help: "Failed RPCs by Gatehouse error reason (google.rpc.ErrorInfo.reason).",
      labelNames: ["service", "method", "reason"],
      registers: [registry],
    });
  return {
    record(service, method, protocol, code, seconds, reason) {
      duration.observe({ service, method, protocol, code: CODE_NAMES[code] ?? String(code) }, seconds);
      if (reason !== undefined) errors.inc({ service, method, reason });
    },
  };
}

/** For adapters built without a registry. */
export const NO_RPC_METRICS: RpcMetrics = { record() {} };
