import { GatehouseError } from "../errors/gatehouse-error.ts";
import type { HeaderReader, TraceSpan, Tracing } from "./tracing.ts";

/** `rpc.system` by the protocol a call came on (OpenTelemetry RPC conventions). */
const RPC_SYSTEM = { grpc: "grpc", "grpc-web": "grpc", connect: "connect_rpc", oauth2: "oauth2" } as const;

/**
 * The SERVER span of one RPC, named `service/method` as the RPC conventions ask, or undefined with
 * tracing off. It carries no request content: tokens and secrets never reach a span.
 */
export function rpcSpan(
  tracing: Tracing | undefined,
  service: string,
  method: string,
  protocol: keyof typeof RPC_SYSTEM,
  header: HeaderReader,
): TraceSpan | undefined {
  return tracing?.serverSpan(`${service}/${method}`, header, {
    "rpc.system": RPC_SYSTEM[protocol],
    "rpc.service": service,
    "rpc.method": method,
    "gatehouse.protocol": protocol,
  });
}

/** Ends an RPC's span with its gRPC status code and, for a failure, the Gatehouse reason. */
export function endRpcSpan(span: TraceSpan | undefined, grpcCode: number, reason?: string): void {
  if (span === undefined) return;
  span.setAttribute("rpc.grpc.status_code", grpcCode);
  span.end(reason);
}

/**
 * Runs `work` inside a child span of `span` (a flow's database work, the caller's authentication),
 * or, with no span, just runs it: the same promise, nothing added.
 */
export function inChildSpan<T>(
  span: TraceSpan | undefined,
  name: string,
  work: () => Promise<T>,
): Promise<T> {
  if (span === undefined) return work();
  const child = span.child(name);
  const failed = (err: unknown): never => {
    child.end(GatehouseError.from(err).code);
    throw err;
  };
  let pending: Promise<T>;
  try {
    pending = work();
  } catch (err) {
    return Promise.reject(err).catch(failed);
  }
  return pending.then((result) => {
    child.end();
    return result;
  }, failed);
}
