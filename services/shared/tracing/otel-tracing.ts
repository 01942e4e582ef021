import {
  type Context,
  defaultTextMapGetter,
  defaultTextMapSetter,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  trace,
} from "@opentelemetry/api";
import { setGlobalErrorHandler, W3CTraceContextPropagator } from "@opentelemetry/core";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { resourceFromAttributes } from "@opentelemetry/resources";
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  BatchSpanProcessor,
  ParentBasedSampler,
  type Sampler,
  TraceIdRatioBasedSampler,
  TracerProvider,
} from "@opentelemetry/sdk-trace";
import { ATTR_SERVICE_NAME } from "@opentelemetry/semantic-conventions";
import type { Logger } from "../logging/index.ts";
import type { HeaderReader, SpanAttributes, TraceHeaders, TraceSpan, Tracing } from "./tracing.ts";
import type { SamplerName } from "./tracing-settings.ts";

export interface OtelTracingOptions {
  /** The OTLP/HTTP traces URL (JSON encoding). */
  url: string;
  serviceName: string;
  sampler: SamplerName;
  samplerArg: number;
  /** Time between two batch exports. */
  exportDelayMs: number;
  logger: Logger;
}

/**
 * Tracing on the OpenTelemetry SDK: spans batched and exported over OTLP/HTTP, W3C trace context
 * read and written explicitly. Nothing is registered globally (no global provider, propagator or
 * context manager): spans are parented by passing them, so two services in one process (tests,
 * `gatehouse dev`) keep apart and no async-hook machinery runs per request.
 */
export function createOtelTracing(options: OtelTracingOptions): Tracing {
  const { logger } = options;
  reportExportFailures(logger);
  const provider = new TracerProvider({
    resource: resourceFromAttributes({ [ATTR_SERVICE_NAME]: options.serviceName }),
    sampler: samplerOf(options.sampler, options.samplerArg),
    spanProcessors: [
      new BatchSpanProcessor({
        exporter: new OTLPTraceExporter({ url: options.url }),
        scheduledDelayMillis: options.exportDelayMs,
      }),
    ],
  });
  const tracer = provider.getTracer("gatehouse");
  const propagator = new W3CTraceContextPropagator();

  function wrap(span: Span): TraceSpan {
    const context = (): Context => trace.setSpan(ROOT_CONTEXT, span);
    return {
      child(name, attributes) {
        return wrap(tracer.startSpan(name, { kind: SpanKind.INTERNAL, attributes }, context()));
      },
      headers() {
        const carrier: Partial<TraceHeaders> = {};
        propagator.inject(context(), carrier, defaultTextMapSetter);
        return carrier.traceparent === undefined ? undefined : (carrier as TraceHeaders);
      },
      setAttribute(key, value) {
        span.setAttribute(key, value);
      },
      end(reason) {
        if (reason !== undefined) {
          span.setAttribute("gatehouse.reason", reason);
          span.setStatus({ code: SpanStatusCode.ERROR, message: reason });
        }
        span.end();
      },
    };
  }

  return {
    serverSpan(name: string, header: HeaderReader, attributes?: SpanAttributes) {
      const carrier = {
        traceparent: header("traceparent"),
        tracestate: header("tracestate"),
      };
      const parent =
        carrier.traceparent === undefined
          ? ROOT_CONTEXT
          : propagator.extract(ROOT_CONTEXT, carrier, defaultTextMapGetter);
      return wrap(tracer.startSpan(name, { kind: SpanKind.SERVER, attributes }, parent));
    },
    async shutdown() {
      await provider.shutdown();
    },
  };
}

/** The OTEL_TRACES_SAMPLER values of the SDK specification. */
function samplerOf(name: SamplerName, ratio: number): Sampler {
  switch (name) {
    case "always_on":
      return new AlwaysOnSampler();
    case "always_off":
      return new AlwaysOffSampler();
    case "traceidratio":
      return new TraceIdRatioBasedSampler(ratio);
    case "parentbased_always_on":
      return new ParentBasedSampler({ root: new AlwaysOnSampler() });
    case "parentbased_always_off":
      return new ParentBasedSampler({ root: new AlwaysOffSampler() });
    case "parentbased_traceidratio":
      return new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(ratio) });
  }
}

const REPORT_EVERY_MS = 60_000;

/**
 * A collector that is down must not flood the log (a failed export every few seconds) nor go
 * unnoticed: the first failure is logged, then at most one line a minute with the count since.
 */
function reportExportFailures(logger: Logger): void {
  let lastReport = 0;
  let missed = 0;
  setGlobalErrorHandler((err) => {
    const now = Date.now();
    if (now - lastReport < REPORT_EVERY_MS) {
      missed += 1;
      return;
    }
    logger.warn({ err: String(err), failuresSinceLastReport: missed }, "trace export failed");
    lastReport = now;
    missed = 0;
  });
}
