import { describe, expect, it } from "vitest";
import {
  AUTHENTICATED_DEFAULT,
  compilePolicy,
  defaultPolicy,
  PolicyError,
} from "../../services/sidecar/policy/index.ts";
import { formatProblem } from "../../services/sidecar/policy/policy-document.ts";

/** Each validation rule of a policy file on its own: the problem's line, column, path and message. */

function problems(text: string, filename = "p.yaml"): string[] {
  try {
    compilePolicy(text, filename);
  } catch (err) {
    expect(err).toBeInstanceOf(PolicyError);
    expect((err as PolicyError).filename).toBe(filename);
    return (err as PolicyError).problems.map((p) => `${p.line}:${p.column} ${p.path}: ${p.message}`);
  }
  return [];
}

describe("route policy validation: one problem per row", () => {
  it.each([
    ["version: 1\n", []],
    ["version: 2\n", ["1:10 version: must be 1"]],
    ['version: "1"\n', ["1:10 version: must be 1"]],
    ["- a\n", ["1:1 : must be a mapping"]],
    ["rules: {}\n", ["1:8 rules: must be a list of rules"]],
    ["rules: [1]\n", ["1:9 rules[0]: must be a mapping"]],
    ["rules:\n  - null\n", ["2:5 rules[0]: must be a mapping"]],
    ["rules:\n  - { match: { path: /a }, name: '' }\n", ["2:34 rules[0].name: must be a non-empty string"]],
    ["rules:\n  - { match: { path: /a }, name: 5 }\n", ["2:34 rules[0].name: must be a non-empty string"]],
    ["rules:\n  - { match: { path: /a }, public: 1 }\n", ["2:36 rules[0].public: must be true or false"]],
    ["rules:\n  - { match: { path: /a }, scopes: [a] }\n", ["2:36 rules[0].scopes: must be a mapping"]],
    ["rules:\n  - { match: { path: /a }, scopes: {} }\n", ["2:36 rules[0].scopes: needs allOf or anyOf"]],
    [
      "rules:\n  - { match: { path: /a }, scopes: { anyOf: [] } }\n",
      ["2:45 rules[0].scopes.anyOf: must be a non-empty list"],
    ],
    [
      "rules:\n  - { match: { path: /a }, scopes: { anyOf: [a, ''] } }\n",
      ["2:49 rules[0].scopes.anyOf[1]: must be a scope name without spaces"],
    ],
    [
      "rules:\n  - { match: { path: /a }, scopes: { allOf: [a], anyOf: [b c] } }\n",
      ["2:58 rules[0].scopes.anyOf[0]: must be a scope name without spaces"],
    ],
    [
      'rules:\n  - { match: { path: /a }, scopes: { allOf: ["a\\tb"] } }\n',
      ["2:46 rules[0].scopes.allOf[0]: must be a scope name without spaces"],
    ],
    [
      "rules:\n  - { match: { path: /a }, audiences: [x, 1] }\n",
      ["2:43 rules[0].audiences[1]: must be a non-empty string"],
    ],
    [
      "rules:\n  - { match: { path: /a }, audiences: a }\n",
      ["2:39 rules[0].audiences: must be a non-empty list"],
    ],
    [
      "rules:\n  - { match: { path: /a }, public: true, audiences: [a] }\n",
      ["2:36 rules[0].public: a public route takes no audiences, scopes or actors"],
    ],
    ["rules:\n  - { match: a }\n", ["2:14 rules[0].match: must be a mapping"]],
    [
      "rules:\n  - { match: {} }\n",
      ["2:14 rules[0].match: needs one of methods, path, prefix, glob or grpc"],
    ],
    ["rules:\n  - { match: { grpc: 5 } }\n", ["2:22 rules[0].match.grpc: must be a string"]],
    [
      "rules:\n  - { match: { grpc: /a.B/C, path: /a } }\n",
      ["2:16 rules[0].match.grpc: grpc cannot be combined with methods, path, prefix or glob"],
    ],
    [
      "rules:\n  - { match: { path: /a, glob: /b } }\n",
      ["2:26 rules[0].match.glob: use one of path, prefix and glob, not path and glob"],
    ],
    [
      "rules:\n  - { match: { glob: /b, prefix: /a } }\n",
      ["2:16 rules[0].match.glob: use one of path, prefix and glob, not prefix and glob"],
    ],
    ["rules:\n  - { match: { methods: [] } }\n", ["2:25 rules[0].match.methods: must be a non-empty list"]],
    [
      "rules:\n  - { match: { methods: [GET, 'P-UT'] } }\n",
      ["2:31 rules[0].match.methods[1]: must be an HTTP method name"],
    ],
    [
      "rules:\n  - { match: { methods: ['GET '] } }\n",
      ["2:26 rules[0].match.methods[0]: must be an HTTP method name"],
    ],
    [
      "rules:\n  - { match: { path: 5 } }\n",
      ['2:22 rules[0].match.path: must be a string starting with "/"'],
    ],
    [
      "rules:\n  - { match: { glob: '/a/b**' } }\n",
      ['2:22 rules[0].match.glob: "**" must be a whole path segment'],
    ],
    ["rules:\n  - { match: { glob: '/a/*/?.x' } }\n", []],
    [
      "rules:\n  - { match: { glob: '/a//*' } }\n",
      ['2:22 rules[0].match.glob: is not a normalized path (would be "/a/x")'],
    ],
    [
      "rules:\n  - { match: { prefix: '/a%2Fb' } }\n",
      ["2:24 rules[0].match.prefix: is not a valid path: the path holds an encoded / or \\"],
    ],
    [
      "rules:\n  - { match: { path: '/%61' } }\n",
      ['2:22 rules[0].match.path: is not a normalized path (would be "/a")'],
    ],
    [`rules:\n  - { match: { path: "/${"a".repeat(5000)}" } }\n`, []],
  ])("%j", (text, expected) => {
    expect(problems(text)).toEqual(expected);
  });

  it.each([
    ["rulez: []\n", 'rulez: unknown key "rulez" (did you mean "rules"?)'],
    ["Rules: []\n", 'Rules: unknown key "Rules" (did you mean "rules"?)'],
    ["defaultx: {}\n", 'defaultx: unknown key "defaultx" (did you mean "default"?)'],
    ["versionxx: 1\n", 'versionxx: unknown key "versionxx" (did you mean "version"?)'],
    ["versionxxx: 1\n", 'versionxxx: unknown key "versionxxx"'],
    ["zzz: 1\n", 'zzz: unknown key "zzz"'],
    ["ruls: []\n", 'ruls: unknown key "ruls" (did you mean "rules"?)'],
    ["rles: []\n", 'rles: unknown key "rles" (did you mean "rules"?)'],
    ["urles: []\n", 'urles: unknown key "urles" (did you mean "rules"?)'],
    ["default: { publc: true }\n", 'default.publc: unknown key "publc" (did you mean "public"?)'],
  ])("%j: %s", (text, message) => {
    expect(problems(text).map((p) => p.replace(/^\S+ /, ""))).toEqual([message]);
  });

  it("reports the problems of one line in column order, after those of earlier lines", () => {
    expect(problems("rules:\n  - { match: { path: /a }, public: x, name: '' }\n  - { match: 1 }\n")).toEqual([
      "2:36 rules[0].public: must be true or false",
      "2:45 rules[0].name: must be a non-empty string",
      "3:14 rules[1].match: must be a mapping",
    ]);
    expect(problems("rules:\n  - { match: 1 }\nversion: 3\n")).toEqual([
      "2:14 rules[0].match: must be a mapping",
      "3:10 version: must be 1",
    ]);
  });

  it("names an unknown key at the key, not at its value", () => {
    expect(problems("rules:\n  - match: { path: /a }\n    scope:\n      allOf: [a]\n")).toEqual([
      '3:5 rules[0].scope: unknown key "scope" (did you mean "scopes"?)',
    ]);
  });
});

describe("route policy: what a valid file compiles to", () => {
  const policy = compilePolicy(
    `version: 1
default:
  public: false
  scopes: { anyOf: [a, b] }
rules:
  - name: pub
    match: { methods: [get], prefix: /pub }
    public: true
  - match: { methods: [Post, PUT] }
    public: false
    audiences: [x]
    scopes: { allOf: [w], anyOf: [y, z] }
`,
    "/etc/p.yaml",
  );

  it("keeps each rule's id, line, requirement and the file it came from", () => {
    expect(policy.source).toBe("/etc/p.yaml");
    expect(policy.defaultRule).toEqual({
      id: "default",
      public: false,
      requirement: { scopes: { anyOf: ["a", "b"] } },
      line: 3,
    });
    expect(policy.rules).toEqual([
      { id: "pub", public: true, requirement: {}, line: 6 },
      {
        id: "rules[1]",
        public: false,
        requirement: { audiences: ["x"], scopes: { allOf: ["w"], anyOf: ["y", "z"] } },
        line: 9,
      },
    ]);
    for (const rule of [...policy.rules, policy.defaultRule]) {
      expect(Object.isFrozen(rule)).toBe(true);
      expect(Object.isFrozen(rule.requirement)).toBe(true);
    }
    expect(Object.isFrozen(policy.rules)).toBe(true);
    expect(Object.isFrozen(policy.rules[1]!.requirement.scopes)).toBe(true);
    expect(Object.isFrozen(policy.rules[1]!.requirement.scopes!.anyOf)).toBe(true);
    expect(Object.isFrozen(policy.rules[1]!.requirement.audiences)).toBe(true);
  });

  it.each([
    ["GET", "/pub/x", "pub"],
    ["get", "/pub", "pub"],
    ["HEAD", "/pub", "default"],
    ["POST", "/pub", "rules[1]"],
    ["post", "/anything", "rules[1]"],
    ["PUT", "/", "rules[1]"],
    ["PATCH", "/x", "default"],
  ])("%s %s → %s", (method, path, id) => {
    expect(policy.match({ method, path }).id).toBe(id);
  });

  it("without a policy file: every route authenticated, nothing else asked", () => {
    const p = defaultPolicy();
    expect(p.source).toBe("(default)");
    expect(p.rules).toEqual([]);
    expect(p.defaultRule).toBe(AUTHENTICATED_DEFAULT);
    expect(AUTHENTICATED_DEFAULT).toEqual({ id: "default", public: false, requirement: {}, line: undefined });
    expect(Object.isFrozen(AUTHENTICATED_DEFAULT)).toBe(true);
    expect(Object.isFrozen(AUTHENTICATED_DEFAULT.requirement)).toBe(true);
  });

  it("a public default opens every route no rule names", () => {
    const p = compilePolicy("default: { public: true }\n", "p.yaml");
    expect(p.match({ method: "GET", path: "/x" })).toMatchObject({ id: "default", public: true, line: 1 });
  });
});

describe("policy document: JSON or YAML, and where a problem is", () => {
  it.each([
    ["p.json", '{"rules": [],}', "invalid JSON"],
    ["p.JSON", '{"rules": [],}', "invalid JSON"],
    ["policy", '  {"rules": [],}', "invalid JSON"],
    ["p.yaml", '{"rules": [],}', "ok"],
    ["p.YML", '{"rules": [],}', "ok"],
    ["p.yml", '{"rules": [],}', "ok"],
    ["policy", "rules: []", "ok"],
    ["p.json.bak", '{"rules": [],}', "invalid JSON"],
    ["p.yaml.json", '{"rules": [],}', "invalid JSON"],
  ])("%s holding %j: %s", (filename, text, outcome) => {
    let result = "ok";
    try {
      compilePolicy(text, filename);
    } catch (err) {
      expect(err).toBeInstanceOf(PolicyError);
      result = (err as PolicyError).problems[0]!.message.slice(0, "invalid JSON".length);
    }
    expect(result).toBe(outcome);
  });

  it("places a JSON syntax error at its line and column", () => {
    const at = (text: string) => {
      try {
        compilePolicy(text, "p.json");
      } catch (err) {
        const [p] = (err as PolicyError).problems;
        expect(p!.message).toMatch(/^invalid JSON: \S/);
        expect(p!.message).not.toMatch(/\n/);
        return `${p!.line}:${p!.column}`;
      }
      return "compiled";
    };
    expect(at('{\n  "rules": [\n    1,\n  ]\n}')).toBe("4:3");
    expect(at('{\n  "a": tru\n}')).toBe("2:11");
    expect(at('{\n  "rules": x\n}')).toBe("2:12");
    expect(at('{"rules": "abc')).toBe("1:15");
    expect(at('{\n  "rules": [')).toBe("2:13");
    expect(at("{")).toBe("1:2");
  });

  it("places an alias without an anchor, and an alias bomb, at the alias", () => {
    const [missing] = problems("rules:\n  - *nothing\n");
    expect(missing).toMatch(/^2:5 : /);
    const bomb = [
      "a: &a [x, x, x, x, x, x, x, x, x, x]",
      "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]",
      "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]",
      "d: [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]",
    ].join("\n");
    const found = problems(bomb);
    expect(found).toHaveLength(1);
    expect(found[0]).toMatch(/^2:8 : \S/);
    expect(found[0]).not.toMatch(/\n/);
  });

  it("reports each YAML syntax error with its line and no path", () => {
    expect(problems("rules: [\n")).toEqual([expect.stringMatching(/^2:1 : \S/)]);
    expect(problems("a: 1\na: 2\nb: 1\nb: 2\n")).toEqual([
      expect.stringMatching(/^2:1 : .*unique/),
      expect.stringMatching(/^4:1 : .*unique/),
    ]);
  });

  it("formats a problem as file:line:column: path: message", () => {
    const p = { line: 3, column: 7, path: "rules[0]", message: "m" };
    expect(formatProblem("f.yaml", p)).toBe("f.yaml:3:7: rules[0]: m");
    expect(formatProblem("f.yaml", { ...p, path: "" })).toBe("f.yaml:3:7: m");
    expect(formatProblem("f.yaml", { ...p, column: undefined })).toBe("f.yaml:3:1: rules[0]: m");
    expect(formatProblem("f.yaml", { ...p, line: undefined })).toBe("f.yaml: rules[0]: m");
    const err = new PolicyError("f.yaml", [p, { ...p, line: 4 }]);
    expect(err.name).toBe("PolicyError");
    expect(err.message).toBe("f.yaml:3:7: rules[0]: m\nf.yaml:4:7: rules[0]: m");
  });
});
