import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { renderConfigurationReference } from "../../scripts/config-reference.ts";

describe("docs/configuration.md", () => {
  it("matches the settings declared in code (regenerate with npx tsx scripts/config-reference.ts)", () => {
    const committed = readFileSync(new URL("../../docs/configuration.md", import.meta.url), "utf8");
    expect(committed).toBe(renderConfigurationReference());
  });
});
