import { z } from "zod";
import { setting, types } from "../settings/index.ts";

/**
 * The standard OpenTelemetry variables Gatehouse reads (spec names, no flags of our own needed):
 * tracing is on when an OTLP endpoint is set and `OTEL_SDK_DISABLED` is not true. The exporter
 * itself still reads the other `OTEL_EXPORTER_OTLP_*` variables (headers, timeout, compression,
 * certificates).
 */
export function tracingSettings(defaultServiceName: string) {
  return {
    otlpEndpoint: setting({
      env: "OTEL_EXPORTER_OTLP_ENDPOINT",
      flag: "otlp-endpoint",
      description:
        "OTLP/HTTP base URL (spans go to <url>/v1/traces); set, it turns tracing on, unset, no tracing code is loaded",
      optional: true,
      schema: types.url(["http", "https"]),
    }),
    otlpTracesEndpoint: setting({
      env: "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
      flag: "otlp-traces-endpoint",
      description: "Full OTLP/HTTP traces URL, used as is; wins over OTEL_EXPORTER_OTLP_ENDPOINT",
      optional: true,
      schema: types.url(["http", "https"]),
    }),
    otelServiceName: setting({
      env: "OTEL_SERVICE_NAME",
      flag: "otel-service-name",
      description: "`service.name` of the exported spans",
      default: defaultServiceName,
      schema: types.text(),
    }),
    otelTracesSampler: setting({
      env: "OTEL_TRACES_SAMPLER",
      flag: "otel-traces-sampler",
      description:
        "always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off or parentbased_traceidratio",
      default: "parentbased_always_on",
      schema: types.oneOf(SAMPLERS),
    }),
    otelTracesSamplerArg: setting({
      env: "OTEL_TRACES_SAMPLER_ARG",
      flag: "otel-traces-sampler-arg",
      description: "Sampling ratio (0 to 1) for the traceidratio samplers",
      default: "1",
      schema: z.string().trim().transform(Number).pipe(z.number().min(0).max(1)),
    }),
    otelSdkDisabled: setting({
      env: "OTEL_SDK_DISABLED",
      flag: "otel-sdk-disabled",
      description: "true: no tracing even with an endpoint set",
      default: "false",
      schema: types.boolean(),
    }),
    otelBspScheduleDelay: setting({
      env: "OTEL_BSP_SCHEDULE_DELAY",
      flag: "otel-bsp-schedule-delay",
      description: "Milliseconds between two exports of the batched spans",
      default: "5000",
      schema: types.integer(1, 600_000),
    }),
  };
}

const SAMPLERS = [
  "always_on",
  "always_off",
  "traceidratio",
  "parentbased_always_on",
  "parentbased_always_off",
  "parentbased_traceidratio",
] as const;

export type SamplerName = (typeof SAMPLERS)[number];

/** The keys {@link tracingSettings} adds to a component's settings. */
export type TracingSettingKey = keyof ReturnType<typeof tracingSettings>;

/** What tracing needs, as parsed from {@link tracingSettings}. */
export interface TracingSettings {
  otlpEndpoint: string | undefined;
  otlpTracesEndpoint: string | undefined;
  otelServiceName: string;
  otelTracesSampler: SamplerName;
  otelTracesSamplerArg: number;
  otelSdkDisabled: boolean;
  otelBspScheduleDelay: number;
}

/**
 * Where spans go, or undefined when tracing is off. The base endpoint gets the OTLP/HTTP signal
 * path appended (OTLP exporter spec); the per-signal one is used as it is.
 */
export function tracesUrl(settings: TracingSettings): string | undefined {
  if (settings.otelSdkDisabled) return undefined;
  if (settings.otlpTracesEndpoint) return settings.otlpTracesEndpoint;
  if (!settings.otlpEndpoint) return undefined;
  return `${settings.otlpEndpoint.replace(/\/+$/, "")}/v1/traces`;
}
