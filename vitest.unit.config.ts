import { defineConfig } from "vitest/config";

/**
 * The unit tests of the modules `npm run test:mutation` mutates, and nothing that needs Postgres or
 * Redis: Stryker runs the tests covering a mutant once per mutant, so each must be quick and local.
 * The jose agreement property is left out on purpose: it signs a few hundred tokens per run, covers
 * nearly every verifier mutant and would multiply the run time, while the table tests below pin the
 * same rules one row at a time.
 */
export default defineConfig({
  test: {
    include: [
      "test/unit/sidecar-verifier.test.ts",
      "test/unit/verifier-rules.test.ts",
      "test/unit/verifier-parsing.test.ts",
      "test/unit/sidecar-in-process.test.ts",
      "test/unit/hostile-token-parsing.property.test.ts",
      "test/unit/sidecar-policy.test.ts",
      "test/unit/canonical-path.test.ts",
      "test/unit/path-matchers.test.ts",
      "test/unit/policy-validation.test.ts",
      "test/unit/hostile-policy-files.property.test.ts",
      "test/unit/refresh-decision.test.ts",
      "test/unit/family-position.test.ts",
      "test/unit/refresh-token-format.test.ts",
      "test/unit/access-token.test.ts",
      "test/unit/sidecar-actors.test.ts",
      "test/unit/token-exchange-rules.test.ts",
    ],
    pool: "forks",
    testTimeout: 30_000,
  },
});
