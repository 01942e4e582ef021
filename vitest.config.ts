import { defineConfig } from "vitest/config";

export default defineConfig({
  // Tests import the SDK by its public name (`gatehouse/verify`...); this package.json `exports`
  // condition points those names at the TypeScript sources instead of the built dist/sdk. The rest
  // are Vite's defaults for server code (its defaultServerConditions), which a list given here replaces.
  ssr: { resolve: { conditions: ["gatehouse-source", "module", "node", "development|production"] } },
  test: {
    include: ["test/**/*.test.ts"],
    exclude: ["test/reliability/**", "node_modules/**"],
    // Fails the whole run at once, with instructions, when Postgres or Redis is down.
    globalSetup: ["test/support/global-setup.ts"],
    pool: "forks",
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Each file owns its own schema and key prefix, so files run in parallel safely.
    fileParallelism: true,
  },
});
