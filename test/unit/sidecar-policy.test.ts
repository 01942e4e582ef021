import { mkdtempSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import {
  canonicalPath,
  compilePolicy,
  defaultPolicy,
  type Policy,
  PolicyError,
  watchPolicy,
} from "../../services/sidecar/policy/index.ts";

/** The rule a request target gets, judged on its canonical path as the guard does. */
function ruleOf(policy: Policy, method: string, target: string) {
  const canonical = canonicalPath(target, { maxLength: 4096, allowEncodedSlashes: false });
  if (!canonical.ok) throw new Error(`${target} refused: ${canonical.code}`);
  return policy.match({ method, path: canonical.judgedPath });
}

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

  it.each([
    ["GET", "/healthz", "health"],
    ["GET", "/healthz/live", "health"],
    ["GET", "/healthzz", "default"],
    ["GET", "/api/orders", "rules[1]"],
    ["HEAD", "/api/orders", "rules[1]"],
    ["get", "/api/orders?page=2", "rules[1]"],
    ["POST", "/api/orders", "rules[2]"],
    ["PUT", "/api/orders", "rules[5]"],
    // Guarded rules ignore one trailing slash (Express serves /api/orders/ from /api/orders).
    ["GET", "/api/orders/", "rules[1]"],
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
    expect(ruleOf(policy, method, path).id).toBe(expected);
  });

  it.each([
    ["/orders.v1.OrderService/GetOrder", "rules[6]"],
    ["/orders.v1.OrderService/CancelOrder", "rules[7]"],
    ["/orders.v1.OrderServiceX/GetOrder", "default"],
    ["/billing.v1.Billing/Pay", "default"],
  ])("gRPC %s → %s", (grpcMethod, expected) => {
    expect(ruleOf(policy, "POST", grpcMethod).id).toBe(expected);
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

describe("route policy: guarded rules err on the guarded side, public rules are exact", () => {
  const policy = compilePolicy(
    `rules:
  - { name: status, match: { path: /status }, public: true }
  - { name: public, match: { prefix: /public }, public: true }
  - { name: css, match: { glob: "/assets/*.css" }, public: true }
  - { name: admin, match: { prefix: /admin }, scopes: { allOf: [admin] } }
  - { name: internal, match: { path: /internal }, scopes: { allOf: [internal] } }
  - { name: reports, match: { glob: "/reports/*/pdf" }, scopes: { allOf: [reports] } }
  - { name: api, match: { prefix: /api/ }, scopes: { allOf: [api] } }
  - { name: open, match: { prefix: / }, public: true }
  - { name: delete, match: { grpc: /demo.v1.DemoService/DeleteItem }, scopes: { allOf: ["orders:write"] } }
  - { name: other, match: { grpc: "/demo.v1.Other/*" }, scopes: { allOf: [other] } }
  - { name: health, match: { grpc: /grpc.health.v1.Health/Check }, public: true }
default: { scopes: { allOf: [fallback] } }
`,
    "p.yaml",
  );

  it.each([
    // Guarded: letter case, one trailing slash and ;-parameters do not matter.
    ["/admin", "admin"],
    ["/ADMIN", "admin"],
    ["/Admin/panel", "admin"],
    ["/admin/", "admin"],
    ["/admin;jsessionid=x/panel", "admin"],
    ["/ADMIN;x", "admin"],
    ["/;x/admin", "admin"],
    ["/adminx", "open"],
    ["/internal", "internal"],
    ["/INTERNAL", "internal"],
    ["/internal/", "internal"],
    ["/Internal;v=1", "internal"],
    ["/internal/x", "open"],
    ["/reports/Q1/PDF", "reports"],
    ["/reports/q1/pdf/", "reports"],
    ["/reports/q1;x/pdf", "reports"],
    ["/API", "api"],
    ["/api/x", "api"],
    ["/apiary", "open"],
    // Public: the exact canonical path only, else the next rule that matches.
    ["/status", "status"],
    ["/status/", "open"],
    ["/STATUS", "open"],
    ["/status;x", "fallback"],
    ["/public", "public"],
    ["/public/x", "public"],
    ["/PUBLIC/x", "open"],
    ["/public;x/y", "fallback"],
    ["/public/x;y", "fallback"],
    ["/assets/site.css", "css"],
    ["/assets/SITE.CSS", "open"],
    ["/assets/site.css/", "open"],
    // gRPC rules come first, for any method (any content type reaches here the same way).
    ["/demo.v1.DemoService/DeleteItem", "delete"],
    ["/demo.v1.demoservice/deleteitem", "delete"],
    ["/demo.v1.DemoService/DeleteItem/", "delete"],
    ["/demo.v1.DemoService/DeleteItem;x", "delete"],
    ["/demo.v1.DemoService/GetItem", "open"],
    ["/demo.v1.Other/Anything", "other"],
    ["/demo.v1.OTHER/Anything/deeper", "other"],
    ["/grpc.health.v1.Health/Check", "health"],
    ["/grpc.health.v1.health/check", "open"],
  ])("%s → %s", (target, expected) => {
    const rule = ruleOf(policy, "GET", target);
    expect(rule.id === "default" ? rule.requirement.scopes?.allOf?.[0] : rule.id).toBe(expected);
  });

  it("opens a public rule to allowed encoded slashes only when the forwarded path meets it too", () => {
    const lenient = (judged: string, forwarded: string) =>
      policy.match({ method: "GET", path: judged, forwardedPath: forwarded }).id;
    expect(lenient("/public/a/b", "/public/a%2Fb")).toBe("public");
    expect(lenient("/public/x", "/public%2Fx")).toBe("open");
    expect(lenient("/status", "/stat%2F..%2Fus")).toBe("open");
    expect(lenient("/admin/x", "/admin%2Fx")).toBe("admin");
  });

  it("tries gRPC rules before path rules for every method", () => {
    for (const method of ["POST", "GET", "PUT"]) {
      expect(ruleOf(policy, method, "/demo.v1.DemoService/DeleteItem").id).toBe("delete");
    }
  });

  it("matches a glob with many stars in one segment in linear time", () => {
    const globs = compilePolicy(
      `rules:
  - { match: { glob: "/x/*a*a*a*a*b" }, scopes: { allOf: [x] } }
  - { match: { glob: "/y/*a*a*a*a*b/**" }, public: true }
`,
      "p.yaml",
    );
    // Before: a backtracking regex took seconds on one such path.
    for (const target of [`/x/${"a".repeat(3000)}`, `/y/${"a".repeat(3000)}/c`]) {
      const started = performance.now();
      expect(ruleOf(globs, "GET", target).id).toBe("default");
      expect(performance.now() - started).toBeLessThan(250);
    }
    expect(ruleOf(globs, "GET", `/x/${"a".repeat(3000)}b`).id).toBe("rules[0]");
    expect(ruleOf(globs, "GET", `/y/${"a".repeat(3000)}b/c`).id).toBe("rules[1]");
  });

  it.each([
    ["/a/*", "/a/", true],
    ["/a/*", "/a/b", true],
    ["/a/*", "/a/b/c", false],
    ["/a/?", "/a/b", true],
    ["/a/?", "/a/bc", false],
    ["/a/*.pdf", "/a/.pdf", true],
    ["/a/**", "/a", true],
    ["/a/**", "/a/", true],
    ["/a/**", "/a/b/c/", true],
    ["/a/**/z", "/a/z", true],
    ["/a/**/z", "/a/b/c/z", true],
    ["/a/**/z", "/a/b/c/y", false],
    ["/a/**/**/z", "/a/b/z", true],
    ["/**/*.js", "/x/y/app.js", true],
    ["/**", "/", true],
    ["/", "/", true],
    ["/", "/a", false],
    ["/a*b*c", "/abc", true],
    ["/a*b*c", "/aXbYbZc", true],
    ["/a*b*c", "/aXbYcZ", false],
  ])("public glob %s on %s: %s", (glob, target, matches) => {
    const p = compilePolicy(`rules:\n  - { match: { glob: "${glob}" }, public: true }\n`, "p.yaml");
    expect(ruleOf(p, "GET", target).public).toBe(matches);
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
  - match: { path: "/a;b" }
  - match: { glob: "/../*" }
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
      "9: rules[5].public: a public route takes no audiences, scopes or actors",
      "12: rules[6].scopes.allOf[0]: must be a scope name without spaces",
      '13: rules[7]: needs a "match"',
      "14: rules[8].match.grpc: grpc cannot be combined with methods, path, prefix or glob",
      '15: rules[9].match.prefix: is not a normalized path (would be "/b")',
      '16: rules[10].match.path: must not hold ";" (rules ignore or refuse ;-parameters)',
      "17: rules[11].match.glob: is not a valid path: the path climbs above the root",
      "19: default.audiences: must be a non-empty list",
      '20: extra: unknown key "extra"',
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
      await expect.poll(() => changes.length === 1, { timeout: 3000 }).toBeTruthy();
      expect(watcher.current().match({ method: "GET", path: "/open" }).public).toBe(true);
      expect(watcher.current().match({ method: "GET", path: "/public/x" }).public).toBe(false);

      writeFileSync(file, "rules:\n  - match: { prefix: nope }\n");
      await expect.poll(() => errors.length === 1, { timeout: 3000 }).toBeTruthy();
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
