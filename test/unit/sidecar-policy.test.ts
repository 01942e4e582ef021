import { mkdtempSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import {
  compilePolicy,
  defaultPolicy,
  normalizePath,
  type Policy,
  PolicyError,
  watchPolicy,
} from "../../services/sidecar/policy/index.ts";

const YAML_POLICY = `# routes of the orders app
default:
  audiences: [orders]
rules:
  - name: health
    match: { prefix: /healthz }
    public: true
  - match: { methods: [GET, head], path: /api/orders }
    scopes: { anyOf: [orders:read, orders:admin] }
  - match: { methods: [POST], path: /api/orders }
    scopes: { allOf: [orders:write] }
  - match: { glob: "/api/*/items/**" }
    audiences: [items]
  - match: { glob: "/files/*.pdf" }
    scopes: { allOf: [files:read] }
  - match: { prefix: /api/ }
    scopes: { allOf: [api] }
  - match: { grpc: /orders.v1.OrderService/GetOrder }
    scopes: { allOf: [orders:read] }
  - match: { grpc: "/orders.v1.OrderService/*" }
    scopes: { allOf: [orders:admin] }
  - match: { methods: [DELETE] }
    scopes: { allOf: [admin] }
`;

describe("route policy: matching", () => {
  const policy = compilePolicy(YAML_POLICY, "policy.yaml");
  const id = (req: Parameters<Policy["match"]>[0]) => policy.match(req).id;

  it.each([
    ["GET", "/healthz", "health"],
    ["GET", "/healthz/live", "health"],
    ["GET", "/healthzz", "default"],
    ["GET", "/api/orders", "rules[1]"],
    ["HEAD", "/api/orders", "rules[1]"],
    ["get", "/api/orders?page=2", "rules[1]"],
    ["POST", "/api/orders", "rules[2]"],
    ["PUT", "/api/orders", "rules[5]"],
    ["GET", "/api/orders/", "rules[5]"],
    ["GET", "/api/v1/items", "rules[3]"],
    ["GET", "/api/v1/items/", "rules[3]"],
    ["GET", "/api/v1/items/7/parts", "rules[3]"],
    ["GET", "/api/v1/v2/items", "rules[5]"],
    ["GET", "/files/report.pdf", "rules[4]"],
    ["GET", "/files/a/report.pdf", "default"],
    ["GET", "/files/report.pdfx", "default"],
    ["DELETE", "/anything", "rules[8]"],
    ["GET", "/", "default"],
    // Normalization: dot segments, repeated slashes and encoded unreserved characters cannot dodge a rule.
    ["GET", "/healthz/../api/orders", "rules[1]"],
    ["GET", "//api//orders", "rules[1]"],
    ["GET", "/api/%6Frders", "rules[1]"],
    ["GET", "/api/%2e%2e/healthz", "health"],
    ["GET", "http://example.com/healthz?x=1", "health"],
  ])("%s %s → %s", (method, path, expected) => {
    expect(id({ method, path })).toBe(expected);
  });

  it.each([
    ["/orders.v1.OrderService/GetOrder", "rules[6]"],
    ["/orders.v1.OrderService/CancelOrder", "rules[7]"],
    ["/orders.v1.OrderServiceX/GetOrder", "default"],
    ["/billing.v1.Billing/Pay", "default"],
  ])("gRPC %s → %s", (grpcMethod, expected) => {
    expect(id({ grpcMethod })).toBe(expected);
  });

  it("keeps gRPC and path rules apart: a gRPC call is not matched by a path prefix", () => {
    const p = compilePolicy("rules:\n  - match: { prefix: / }\n    public: true\n", "p.yaml");
    expect(p.match({ method: "POST", path: "/orders.v1.OrderService/GetOrder" }).public).toBe(true);
    expect(p.match({ grpcMethod: "/orders.v1.OrderService/GetOrder" }).public).toBe(false);
  });

  it("carries the requirements of the rule it picked, and the default rule's", () => {
    expect(policy.match({ method: "GET", path: "/api/orders" })).toMatchObject({
      public: false,
      requirement: { scopes: { anyOf: ["orders:read", "orders:admin"] } },
      line: 8,
    });
    expect(policy.match({ method: "GET", path: "/healthz" })).toMatchObject({
      public: true,
      requirement: {},
    });
    expect(policy.match({ method: "GET", path: "/" })).toMatchObject({
      id: "default",
      requirement: { audiences: ["orders"] },
    });
    expect(Object.isFrozen(policy.match({ method: "GET", path: "/" }).requirement)).toBe(true);
  });

  it("first match wins", () => {
    const p = compilePolicy(
      `rules:
  - match: { prefix: /a }
    scopes: { allOf: [first] }
  - match: { path: /a/b }
    scopes: { allOf: [second] }
`,
      "p.yaml",
    );
    expect(p.match({ method: "GET", path: "/a/b" }).id).toBe("rules[0]");
  });

  it("requires a valid token everywhere when there is no policy file, or an empty one", () => {
    for (const p of [defaultPolicy(), compilePolicy("", "empty.yaml"), compilePolicy("{}", "empty.json")]) {
      expect(p.match({ method: "GET", path: "/x" })).toMatchObject({
        id: "default",
        public: false,
        requirement: {},
      });
    }
  });

  it("reads the same policy from JSON", () => {
    const json = compilePolicy(
      JSON.stringify({ rules: [{ match: { glob: "/api/**" }, scopes: { allOf: ["api"] } }] }, null, 2),
      "policy.json",
    );
    expect(json.match({ method: "GET", path: "/api/x/y" }).requirement.scopes).toEqual({ allOf: ["api"] });
  });
});

describe("route policy: path normalization", () => {
  it.each([
    ["/a/b", "/a/b"],
    ["/a/./b/../c", "/a/c"],
    ["/a//b///c/", "/a/b/c/"],
    ["/../../etc", "/etc"],
    ["/a/%7Euser/%2F%2f", "/a/~user/%2F%2F"],
    ["/a?x=/../b", "/a"],
    ["/a#frag", "/a"],
    ["a/b", "/a/b"],
    ["/a/..", "/"],
  ])("%s → %s", (raw, expected) => {
    expect(normalizePath(raw)).toBe(expected);
  });
});

describe("route policy: validation errors name the line", () => {
  const problemsOf = (text: string, filename: string) => {
    try {
      compilePolicy(text, filename);
    } catch (err) {
      expect(err).toBeInstanceOf(PolicyError);
      return (err as PolicyError).problems.map(
        (p) => `${p.line}: ${p.path ? `${p.path}: ` : ""}${p.message}`,
      );
    }
    throw new Error("policy compiled");
  };

  it("reports every problem in a YAML file with its line", () => {
    const text = `rules:
  - match: { prefix: api }
  - match: { glob: "/a/b**c" }
  - match: { prefix: /x }
    scope: { allOf: [a] }
  - match: { grpc: "orders.Service/Get" }
  - match: { path: /p, prefix: /p }
  - match: { prefix: /pub }
    public: true
    scopes: { allOf: [a] }
  - match: { methods: [GET] }
    scopes: { allOf: ["two words"] }
  - public: true
  - match: { methods: [GET], grpc: /a.B/C }
  - match: { prefix: /a/../b }
default:
  audiences: []
extra: 1
`;
    expect(problemsOf(text, "policy.yaml")).toEqual([
      '2: rules[0].match.prefix: must be a string starting with "/"',
      '3: rules[1].match.glob: "**" must be a whole path segment',
      '5: rules[2].scope: unknown key "scope" (did you mean "scopes"?)',
      '6: rules[3].match.grpc: must look like "/pkg.Service/Method" or "/pkg.Service/*"',
      "7: rules[4].match.prefix: use one of path, prefix and glob, not path and prefix",
      "9: rules[5].public: a public route takes no audiences or scopes",
      "12: rules[6].scopes.allOf[0]: must be a scope name without spaces",
      '13: rules[7]: needs a "match"',
      "14: rules[8].match.grpc: grpc cannot be combined with methods, path, prefix or glob",
      '15: rules[9].match.prefix: is not a normalized path (would be "/b")',
      "17: default.audiences: must be a non-empty list",
      '18: extra: unknown key "extra"',
    ]);
  });

  it("reports YAML syntax errors and repeated keys with their line", () => {
    expect(problemsOf("rules:\n  - match: { prefix: /a\n", "p.yaml")[0]).toMatch(/^\d+: /);
    expect(problemsOf("rules: []\nrules: []\n", "p.yaml")).toEqual([expect.stringMatching(/^2: .*unique/)]);
  });

  it("reports JSON syntax errors at their line", () => {
    const text = '{\n  "rules": [\n    { "match": { "prefix": "/a" }, }\n  ]\n}\n';
    expect(problemsOf(text, "policy.json")).toEqual([expect.stringMatching(/^3: invalid JSON/)]);
    expect(problemsOf('{\n  "rules": [\n', "policy.json")).toEqual([
      expect.stringMatching(/^3: invalid JSON/),
    ]);
    // V8 gives no position for an unexpected token: found by bisection.
    expect(() => compilePolicy('{\n  "rules": x\n}', "policy.json")).toThrow(
      /^policy\.json:2:12: invalid JSON/,
    );
  });

  it("reports JSON problems and repeated keys (which JSON.parse would hide) at their line", () => {
    const text = '{\n  "rules": [\n    { "match": { "prefix": "/a" },\n      "public": "yes" }\n  ]\n}\n';
    expect(problemsOf(text, "policy.json")).toEqual(["4: rules[0].public: must be true or false"]);
    expect(problemsOf('{\n  "rules": [],\n  "rules": []\n}', "policy.json")).toEqual([
      expect.stringMatching(/^3: .*unique/),
    ]);
  });

  it("formats the error message as file:line:column", () => {
    expect(() => compilePolicy("rules:\n  - match: { prefix: api }\n", "/etc/gatehouse/policy.yaml")).toThrow(
      '/etc/gatehouse/policy.yaml:2:22: rules[0].match.prefix: must be a string starting with "/"',
    );
  });
});

describe("route policy: reload", () => {
  let dir: string | undefined;
  afterEach(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const until = async (condition: () => boolean, ms = 3000) => {
    const deadline = Date.now() + ms;
    while (!condition()) {
      if (Date.now() > deadline) throw new Error("timed out");
      await new Promise((r) => setTimeout(r, 20));
    }
  };

  it("picks up a new file, and keeps the old policy when the new one is invalid", async () => {
    dir = mkdtempSync(join(tmpdir(), "gatehouse-policy-"));
    const file = join(dir, "policy.yaml");
    writeFileSync(file, "rules:\n  - match: { prefix: /public }\n    public: true\n");
    const changes: Policy[] = [];
    const errors: Error[] = [];
    const logged: string[] = [];
    const watcher = watchPolicy(
      file,
      (p) => changes.push(p),
      (e) => errors.push(e),
      { debounceMs: 30, logger: { info: (_o, m) => logged.push(m), error: (_o, m) => logged.push(m) } },
    );
    try {
      expect(watcher.current().match({ method: "GET", path: "/public/x" }).public).toBe(true);

      // Replace the file the way editors and ConfigMaps do: write elsewhere, rename over.
      writeFileSync(join(dir, "next"), "rules:\n  - match: { prefix: /open }\n    public: true\n");
      renameSync(join(dir, "next"), file);
      await until(() => changes.length === 1);
      expect(watcher.current().match({ method: "GET", path: "/open" }).public).toBe(true);
      expect(watcher.current().match({ method: "GET", path: "/public/x" }).public).toBe(false);

      writeFileSync(file, "rules:\n  - match: { prefix: nope }\n");
      await until(() => errors.length === 1);
      expect(errors[0]).toBeInstanceOf(PolicyError);
      expect(errors[0]!.message).toContain("policy.yaml:2:");
      expect(watcher.current().match({ method: "GET", path: "/open" }).public).toBe(true);
      expect(logged).toEqual([
        "route policy reloaded",
        "route policy not reloaded; keeping the previous one",
      ]);

      // reload() on demand (SIGHUP): nothing changed, nothing happens.
      expect(await watcher.reload()).toBe(false);
      expect(changes).toHaveLength(1);
    } finally {
      watcher.close();
    }
  });

  it("refuses to start on an invalid file", () => {
    dir = mkdtempSync(join(tmpdir(), "gatehouse-policy-"));
    const file = join(dir, "policy.json");
    writeFileSync(file, "{ nope");
    expect(() =>
      watchPolicy(
        file,
        () => {},
        () => {},
      ),
    ).toThrow(PolicyError);
  });
});
