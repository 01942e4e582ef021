import { describe, expect, it } from "vitest";
import { loadSettings, SettingsError } from "../../services/shared/settings/index.ts";
import { tracesUrl, tracingSettings } from "../../services/shared/tracing/tracing-settings.ts";

const load = (env: Record<string, string>) => loadSettings(tracingSettings("gatehouse-test"), { env });

describe("tracing settings", () => {
  it.each([
    [{}, undefined],
    [{ OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318" }, "http://collector:4318/v1/traces"],
    [{ OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318/" }, "http://collector:4318/v1/traces"],
    [{ OTEL_EXPORTER_OTLP_ENDPOINT: "https://c.example/otlp" }, "https://c.example/otlp/v1/traces"],
    [{ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://c:4318/custom" }, "http://c:4318/custom"],
    [
      { OTEL_EXPORTER_OTLP_ENDPOINT: "http://a:4318", OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://b:4318/t" },
      "http://b:4318/t",
    ],
    [{ OTEL_EXPORTER_OTLP_ENDPOINT: "http://a:4318", OTEL_SDK_DISABLED: "true" }, undefined],
    [{ OTEL_EXPORTER_OTLP_ENDPOINT: "http://a:4318", OTEL_SDK_DISABLED: "false" }, "http://a:4318/v1/traces"],
  ])("%j → spans to %s", (env, url) => {
    expect(tracesUrl(load(env))).toBe(url);
  });

  it("defaults to the SDK specification's: parent-based always-on, 5 s batches, the component's name", () => {
    expect(load({})).toMatchObject({
      otelServiceName: "gatehouse-test",
      otelTracesSampler: "parentbased_always_on",
      otelTracesSamplerArg: 1,
      otelBspScheduleDelay: 5000,
      otelSdkDisabled: false,
    });
  });

  it.each([
    ["OTEL_TRACES_SAMPLER", "jaeger_remote"],
    ["OTEL_TRACES_SAMPLER_ARG", "1.5"],
    ["OTEL_TRACES_SAMPLER_ARG", "half"],
    ["OTEL_EXPORTER_OTLP_ENDPOINT", "grpc://collector:4317"],
    ["OTEL_SDK_DISABLED", "maybe"],
  ])("refuses %s=%s at start-up, naming the variable", (name, value) => {
    expect(() => load({ [name]: value })).toThrow(SettingsError);
    expect(() => load({ [name]: value })).toThrow(name);
  });
});
