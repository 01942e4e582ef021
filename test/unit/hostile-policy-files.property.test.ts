import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { compilePolicy, type Policy, PolicyError } from "../../services/sidecar/policy/index.ts";

/**
 * Route policy files are written by people and reloaded while the sidecar runs: whatever text is in
 * the file, compiling it gives a policy or a PolicyError whose every problem names a line — never a
 * crash, never a silent half-policy.
 */

const RUNS = { numRuns: 200 };

/** The policy's outcome: the compiled policy, or the PolicyError. Any other throw fails the property. */
function compile(text: string, filename: string): Policy | PolicyError {
  try {
    return compilePolicy(text, filename);
  } catch (err) {
    if (err instanceof PolicyError) return err;
    throw new Error(`compilePolicy threw ${(err as Error)?.name}: ${(err as Error)?.message}`);
  }
}

function checkOutcome(text: string, filename: string): Policy | PolicyError {
  const result = compile(text, filename);
  const lines = text.split(/\r\n|\r|\n/).length;
  if (result instanceof PolicyError) {
    expect(result.problems.length).toBeGreaterThan(0);
    for (const p of result.problems) {
      expect(p.line, `${p.path}: ${p.message}`).toBeGreaterThanOrEqual(1);
      expect(p.line!).toBeLessThanOrEqual(lines + 1);
      expect(p.message).not.toBe("");
    }
    expect(result.message).toContain(`${filename}:`);
  } else {
    // A compiled policy answers every request without throwing.
    for (const req of [
      { method: "GET", path: "/" },
      { method: "post", path: "/api/v1/items/7?x=1" },
      { method: "DELETE", path: "/A;x/b/" },
      { method: "POST", path: "/orders.v1.OrderService/GetOrder" },
    ]) {
      expect(typeof result.match(req).id).toBe("string");
    }
  }
  return result;
}

const name = fc.string({ unit: fc.constantFrom(..."abcdefgh:/*.-_ {}[]#"), maxLength: 12 });
const names = fc.oneof(fc.array(name, { maxLength: 3 }), name, fc.integer(), fc.constant(null));
const anyValue = fc.oneof(fc.string({ maxLength: 10 }), fc.integer(), fc.boolean(), fc.constant(null), names);

/** Documents shaped like policies, right and wrong: known and unknown keys, values of every type. */
const matchSpec = fc.record(
  {
    methods: fc.oneof(
      fc.array(fc.constantFrom("GET", "post", "DELETE", "", "G E T", "*"), { maxLength: 3 }),
      anyValue,
    ),
    path: fc.oneof(fc.constantFrom("/a", "/", "", "a", "/x/../y"), anyValue),
    prefix: fc.oneof(fc.constantFrom("/api/", "/", "", "api"), anyValue),
    glob: fc.oneof(fc.constantFrom("/api/*/items/**", "/**", "**", "/a/[b", "/*.pdf", "/a/***"), anyValue),
    grpc: fc.oneof(fc.constantFrom("/orders.v1.OrderService/*", "/x/y", "*", "/a.B/", ""), anyValue),
    prefx: anyValue,
  },
  { requiredKeys: [] },
);
const access = {
  public: fc.oneof(fc.boolean(), anyValue),
  audiences: names,
  scopes: fc.oneof(fc.record({ allOf: names, anyOf: names, oneOf: names }, { requiredKeys: [] }), anyValue),
};
const rule = fc.record(
  { name: anyValue, match: fc.oneof(matchSpec, anyValue), ...access },
  { requiredKeys: [] },
);
const policyDoc = fc.record(
  {
    version: fc.oneof(fc.constant(1), anyValue),
    default: fc.oneof(fc.record(access, { requiredKeys: [] }), anyValue),
    rules: fc.oneof(fc.array(fc.oneof(rule, anyValue), { maxLength: 6 }), anyValue),
    extra: anyValue,
  },
  { requiredKeys: [] },
);

describe("route policy files under hostile input", () => {
  it("a good policy compiles (the properties below can tell a policy from an error)", () => {
    const ok = checkOutcome("rules:\n  - match: { prefix: /healthz }\n    public: true\n", "p.yaml");
    expect(ok).not.toBeInstanceOf(PolicyError);
    expect(checkOutcome("rules: 7\n", "p.yaml")).toBeInstanceOf(PolicyError);
  });

  it("any text, as YAML or JSON: a policy or an error naming a line", () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string({ maxLength: 300 }),
          fc.string({
            unit: fc.constantFrom(..."rules:-matchpublic{}[]\"'&*!|>#% \n\t/ 1", "\r\n"),
            maxLength: 200,
          }),
          fc.string({ unit: "binary", maxLength: 100 }),
        ),
        fc.constantFrom("policy.yaml", "policy.json", "policy"),
        (text, filename) => {
          checkOutcome(text, filename);
        },
      ),
      { numRuns: 500 },
    );
  });

  it("policy-shaped documents of any content, as YAML (block and flow) and JSON", () => {
    fc.assert(
      fc.property(
        policyDoc,
        fc.constantFrom("yaml-block", "yaml-flow", "json", "json-as-yaml"),
        (doc, style) => {
          const text =
            style === "yaml-block"
              ? stringify(doc)
              : style === "yaml-flow"
                ? stringify(doc, { collectionStyle: "flow" })
                : JSON.stringify(doc, null, style === "json" ? 2 : 0);
          checkOutcome(text, style === "json" ? "policy.json" : "policy.yaml");
        },
      ),
      RUNS,
    );
  });

  it("truncated or spliced good policies: a policy or an error naming a line", () => {
    const good = [
      'default:\n  audiences: [orders]\nrules:\n  - name: health\n    match: { prefix: /healthz }\n    public: true\n  - match: { methods: [GET], glob: "/api/*/items/**" }\n    scopes: { anyOf: [items:read] }\n  - match: { grpc: /orders.v1.OrderService/* }\n    scopes: { allOf: [orders:read] }\n',
      JSON.stringify(
        {
          rules: [
            { match: { path: "/a" }, audiences: ["x"] },
            { match: { methods: ["DELETE"] }, scopes: { allOf: ["admin"] } },
          ],
        },
        null,
        2,
      ),
    ];
    fc.assert(
      fc.property(
        fc.constantFrom(...good),
        fc.nat(),
        fc.nat(),
        fc.string({ maxLength: 8 }),
        (text, a, b, insert) => {
          const i = a % (text.length + 1);
          const j = i + (b % 20);
          checkOutcome(text.slice(0, i) + insert + text.slice(j), "policy.yaml");
          checkOutcome(text.slice(0, i), text.startsWith("{") ? "policy.json" : "policy.yaml");
        },
      ),
      RUNS,
    );
  });

  it("YAML bombs and deep nesting are refused, not expanded", () => {
    const bomb = [
      "a: &a [x, x, x, x, x, x, x, x, x]",
      "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]",
      "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]",
      "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]",
      "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]",
      "rules: *e",
    ].join("\n");
    expect(checkOutcome(bomb, "policy.yaml")).toBeInstanceOf(PolicyError);
    // An alias naming no anchor: found by the property above as the input "*!".
    const unresolved = checkOutcome("version: 1\nrules:\n  - *nope\n", "policy.yaml");
    expect(unresolved).toBeInstanceOf(PolicyError);
    expect((unresolved as PolicyError).problems[0]).toMatchObject({ line: 3 });
    expect(checkOutcome(`${"[".repeat(5000)}${"]".repeat(5000)}`, "policy.yaml")).toBeInstanceOf(PolicyError);
    expect(checkOutcome(`${'{"a":'.repeat(3000)}1${"}".repeat(3000)}`, "policy.json")).toBeInstanceOf(
      PolicyError,
    );
  });
});
