import { defineConfig } from "vitest/config";

export default defineConfig({
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
