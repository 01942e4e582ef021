import { defineConfig } from "vitest/config";
import { NameOrderSequencer } from "./test/reliability/support/name-order-sequencer.ts";

/**
 * `npm run test:reliability`: faults, load and log checks against real processes. Scenarios start
 * token services, sidecars, a private Postgres and a private Redis, and some of them kill those, so
 * files run one at a time in name order (the log check, `zz-`, last) with generous timeouts.
 */
export default defineConfig({
  test: {
    include: [
      "test/reliability/**/*.test.ts",
      // Hostile input and overload also run in `npm test`; listed here so this command covers every
      // reliability scenario in one run.
      "test/unit/hostile-*.property.test.ts",
      "test/integration/hostile-rpcs.test.ts",
      "test/integration/overload.test.ts",
    ],
    // The shared Postgres and Redis must be up (private ones are started by the scenarios themselves);
    // the second setup makes the run directory every scenario writes its logs and secrets to.
    globalSetup: ["test/support/global-setup.ts", "test/reliability/support/run-directory-setup.ts"],
    pool: "forks",
    fileParallelism: false,
    maxWorkers: 1,
    sequence: { sequencer: NameOrderSequencer },
    testTimeout: 180_000,
    hookTimeout: 120_000,
    teardownTimeout: 60_000,
  },
});
