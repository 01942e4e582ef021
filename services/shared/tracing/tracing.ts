import type { Logger } from "../logging/index.ts";
import { type TracingSettings, tracesUrl } from "./tracing-settings.ts";

/** Span attribute values: what OTLP carries and what Gatehouse sets (never tokens or secrets). */
export type SpanAttributes = Record<string, string | number | boolean>;

/** Reads one request header by lower-case name. */
export type HeaderReader = (name: string) => string | undefined;

/** The W3C trace context naming a span as the parent, for the next hop's request (or the caller's answer). */
export interface TraceHeaders {
  traceparent: string;
  tracestate?: string;
}

/** One span in flight. */
export interface TraceSpan {
  /** A child span, e.g. a database statement or the sidecar's token verification. */
  child(name: string, attributes?: SpanAttributes): TraceSpan;
  /** `traceparent` (and `tracestate`) that make this span the parent of the next hop. */
  headers(): TraceHeaders | undefined;
  setAttribute(key: string, value: string | number | boolean): void;
  /** Ends the span; a Gatehouse error code marks it failed (`gatehouse.reason`, status ERROR). */
  end(reason?: string): void;
}

/**
 * Tracing for one process. Call sites hold `Tracing | undefined` and write `tracing?.serverSpan(...)`:
 * with tracing off there is no object, no SDK module loaded, and nothing done per request.
 */
export interface Tracing {
  /**
   * A SERVER span continuing the caller's trace (its `traceparent`/`tracestate`, read through
   * `header`), or starting a new trace when it sent none or a malformed one.
   */
  serverSpan(name: string, header: HeaderReader, attributes?: SpanAttributes): TraceSpan;
  /** Exports what is still queued and stops. */
  shutdown(): Promise<void>;
}

/**
 * Tracing from the standard OpenTelemetry settings, or undefined when no OTLP endpoint is set (or
 * `OTEL_SDK_DISABLED`). The SDK is imported only in the first case (in the sidecar bundle it is a
 * chunk of its own): the idle sidecar's memory budget has no room for it unless it is used.
 */
export async function startTracing(settings: TracingSettings, logger: Logger): Promise<Tracing | undefined> {
  const url = tracesUrl(settings);
  if (url === undefined) return undefined;
  const { createOtelTracing } = await import("./otel-tracing.ts");
  const tracing = createOtelTracing({
    url,
    serviceName: settings.otelServiceName,
    sampler: settings.otelTracesSampler,
    samplerArg: settings.otelTracesSamplerArg,
    exportDelayMs: settings.otelBspScheduleDelay,
    logger,
  });
  logger.info(
    { otlp: url, serviceName: settings.otelServiceName, sampler: settings.otelTracesSampler },
    "tracing on",
  );
  return tracing;
}
