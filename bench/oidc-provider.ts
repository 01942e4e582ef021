/**
 * The Refresh peer alone: oidc-provider's refresh grant with rotation, on Postgres (and, labelled as
 * such, on its in-memory adapter). bench/token-service.ts runs the Postgres figure beside Gatehouse's
 * Refresh in the same run and reports the ratio; this file is for looking at the peer by itself.
 * How it is configured: bench/lib/oidc-provider-peer.ts.
 *
 *   npx tsx bench/oidc-provider.ts [--duration 10] [--concurrency 32] [--memory 0|1]
 */
import { benchArgs } from "./lib/bench-args.ts";
import { report, row } from "./lib/bench-results.ts";
import { measureOidcProviderRefresh, OIDC_PROVIDER_CONFIG } from "./lib/oidc-provider-peer.ts";

const DATABASE_URL = process.env.TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const args = benchArgs("npx tsx bench/oidc-provider.ts [flags]", {
  duration: 10,
  concurrency: 32,
  memory: 1,
});

async function main(): Promise<void> {
  const durationMs = args.duration * 1000;
  const concurrency = Math.max(1, Math.floor(args.concurrency));
  const withMemory = args.memory > 0;

  const onPg = await measureOidcProviderRefresh({
    databaseUrl: DATABASE_URL,
    concurrency,
    durationMs,
    storage: "postgres",
  });
  const onMemory = withMemory
    ? await measureOidcProviderRefresh({
        databaseUrl: DATABASE_URL,
        concurrency,
        durationMs,
        storage: "memory",
      })
    : undefined;
  report(
    "oidc-provider",
    [
      row("oidc_provider_refresh_per_s", onPg.perSecond, "grants/s"),
      row("oidc_provider_refresh_p50_ms", onPg.p50, "ms"),
      row("oidc_provider_refresh_p99_ms", onPg.p99, "ms"),
      ...(onMemory
        ? [
            row(
              "oidc_provider_refresh_per_s_in_memory_store",
              onMemory.perSecond,
              "grants/s (not persisted)",
            ),
            row("oidc_provider_refresh_p99_ms_in_memory_store", onMemory.p99, "ms (not persisted)"),
          ]
        : []),
    ],
    {
      durationS: durationMs / 1000,
      concurrency,
      how: OIDC_PROVIDER_CONFIG,
      errors: { postgres: onPg.errors, memory: onMemory?.errors },
      inMemory:
        "in-memory rows: oidc-provider's default LRU memory adapter, nothing persisted; not comparable with Gatehouse on Postgres",
    },
  );
}

await main();
// oidc-provider leaves timers and pool connections behind.
process.exit(0);
