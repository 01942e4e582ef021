import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import {
  compilePolicy,
  MATCH_KEYS,
  RULE_KEYS,
  SCOPE_KEYS,
  TOP_KEYS,
} from "../../services/sidecar/policy/compile-policy.ts";

/** docs/policy.md is the policy reference: its examples compile, and it names every key the compiler takes. */
const doc = readFileSync(new URL("../../docs/policy.md", import.meta.url), "utf8");
const yamlBlocks = [...doc.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1]!);

describe("docs/policy.md", () => {
  it("has examples, and every one of them compiles", () => {
    expect(yamlBlocks.length).toBeGreaterThanOrEqual(4);
    for (const block of yamlBlocks) expect(() => compilePolicy(block, "policy.yaml")).not.toThrow();
  });

  it("lists every key the compiler accepts in its key table", () => {
    const table = doc.slice(doc.indexOf("## Every key"), doc.indexOf("## Examples"));
    for (const key of TOP_KEYS) expect(table).toContain(`| \`${key}\` |`);
    for (const key of RULE_KEYS.filter((k) => k !== "scopes")) expect(table).toContain(`| \`${key}\` |`);
    for (const key of MATCH_KEYS) expect(table).toContain(`| \`match.${key}\` |`);
    for (const key of SCOPE_KEYS) expect(table).toContain(`| \`scopes.${key}\` |`);
  });
});
