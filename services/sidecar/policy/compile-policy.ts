import type { Requirement } from "../verifier/identity.ts";
import { canonicalPath } from "./canonical-path.ts";
import { exactPath, grpcMethod, type PathTest, pathGlob, pathPrefix, RequestPath } from "./path-matchers.ts";
import {
  type DocumentPath,
  PolicyError,
  type PolicyProblem,
  parsePolicyDocument,
} from "./policy-document.ts";

/** What a request must bring. `public` rules need no token at all. */
export interface Rule {
  /** The rule's `name`, or `rules[i]`, or `default`: for logs and metrics. */
  readonly id: string;
  readonly public: boolean;
  readonly requirement: Requirement;
  /** Line of the rule in its file, when it came from one. */
  readonly line: number | undefined;
}

export interface PolicyRequest {
  readonly method: string;
  /** The canonical path the policy judges (`judgedPath` of canonical-path.ts), without query. */
  readonly path: string;
  /**
   * The canonical path the app receives, when it differs (allowed encoded slashes kept encoded): a
   * public rule must match it too, as the app may route `/public%2Fx` elsewhere than `/public/x`.
   */
  readonly forwardedPath?: string;
}

export interface Policy {
  readonly source: string;
  readonly rules: readonly Rule[];
  readonly defaultRule: Rule;
  /** The first gRPC rule that matches, else the first path rule, else the default rule. Pure. */
  match(request: PolicyRequest): Rule;
}

interface CompiledRule {
  readonly rule: Rule;
  readonly methods: ReadonlySet<string> | undefined;
  readonly test: PathTest;
}

export const TOP_KEYS = ["version", "default", "rules"];
export const RULE_KEYS = ["name", "match", "public", "audiences", "scopes", "actors"];
const DEFAULT_KEYS = ["public", "audiences", "scopes", "actors"];
export const MATCH_KEYS = ["methods", "path", "prefix", "glob", "grpc"];
export const SCOPE_KEYS = ["allOf", "anyOf"];

/** Every route needs a valid token; no scopes, the verifier's audiences. What runs without a policy file. */
export const AUTHENTICATED_DEFAULT: Rule = Object.freeze({
  id: "default",
  public: false,
  requirement: Object.freeze({}),
  line: undefined,
});

/**
 * Compiles a route policy (YAML or JSON; see `policy.example.yaml` below) into a matcher of canonical
 * paths (canonical-path.ts; docs/policy.md has the full semantics). gRPC rules (`grpc:`) are tried
 * first, for every request whatever its content type (gRPC, gRPC-Web and Connect reach the same
 * handler over plain HTTP), then the path rules; in each group the first match wins, and the default
 * rule applies when none matches. Guarded rules match regardless of letter case, one trailing slash
 * and `;`-parameters; public rules only the exact canonical path (path-matchers.ts). Every problem in
 * the file is reported at once, each with its line.
 *
 * @example
 * // default: { audiences: [orders] }          # optional; default is: authenticated, no scopes
 * // rules:
 * //   - match: { prefix: /healthz }
 * //     public: true
 * //   - match: { methods: [GET], glob: "/api/*\/items/**" }
 * //     scopes: { anyOf: [items:read, items:admin] }
 * //   - match: { grpc: /orders.v1.OrderService/* }
 * //     scopes: { allOf: [orders:read] }
 * //   - match: { prefix: /internal/ledger }
 * //     actors: [billing]                    # only tokens billing exchanged and calls with
 * const policy = compilePolicy(await readFile(file, "utf8"), file);
 * const rule = policy.match({ method: "GET", path: canonical.judgedPath });
 */
export function compilePolicy(text: string, filename = "policy.yaml"): Policy {
  const doc = parsePolicyDocument(text, filename);
  const problems: PolicyProblem[] = [];
  const report = (path: DocumentPath, message: string, key = false) => {
    const pos = doc.locate(path, key);
    problems.push({ line: pos?.line, column: pos?.column, path: renderPath(path), message });
  };
  const v = new Validator(report);

  const top = doc.value ?? {};
  const http: CompiledRule[] = [];
  const grpc: CompiledRule[] = [];
  const rules: Rule[] = [];
  let defaultRule = AUTHENTICATED_DEFAULT;
  if (v.object(top, [], TOP_KEYS)) {
    if (top.version !== undefined && top.version !== 1) report(["version"], "must be 1");
    if (top.default !== undefined && v.object(top.default, ["default"], DEFAULT_KEYS)) {
      const requirement = v.access(top.default, ["default"]);
      if (requirement) defaultRule = freezeRule("default", requirement, doc.locate(["default"])?.line);
    }
    if (top.rules !== undefined) {
      if (!Array.isArray(top.rules)) report(["rules"], "must be a list of rules");
      else {
        top.rules.forEach((raw: unknown, i: number) => {
          const path = ["rules", i];
          if (!v.object(raw, path, RULE_KEYS)) return;
          if (raw.name !== undefined && !(typeof raw.name === "string" && raw.name !== "")) {
            report([...path, "name"], "must be a non-empty string");
          }
          const requirement = v.access(raw, path);
          const matcher = v.match(raw.match, [...path, "match"], requirement?.public !== true);
          if (!matcher || !requirement) return;
          const id = typeof raw.name === "string" && raw.name !== "" ? raw.name : `rules[${i}]`;
          const rule = freezeRule(id, requirement, doc.locate(path)?.line);
          rules.push(rule);
          const test = rule.public ? bothReadings(matcher.test) : matcher.test;
          (matcher.grpc ? grpc : http).push({ rule, methods: matcher.methods, test });
        });
      }
    }
  }
  if (problems.length > 0) {
    problems.sort((a, b) => (a.line ?? 0) - (b.line ?? 0) || (a.column ?? 0) - (b.column ?? 0));
    throw new PolicyError(filename, problems);
  }
  return buildPolicy(filename, rules, http, grpc, defaultRule);
}

/** The policy in force without a policy file: every route authenticated, no scopes. */
export function defaultPolicy(): Policy {
  return buildPolicy("(default)", [], [], [], AUTHENTICATED_DEFAULT);
}

function buildPolicy(
  source: string,
  rules: Rule[],
  http: readonly CompiledRule[],
  grpc: readonly CompiledRule[],
  defaultRule: Rule,
): Policy {
  return Object.freeze({
    source,
    rules: Object.freeze(rules),
    defaultRule,
    match(request: PolicyRequest): Rule {
      const path = new RequestPath(request.path, request.forwardedPath);
      for (const r of grpc) if (r.test(path)) return r.rule;
      const method = request.method.toUpperCase();
      for (const r of http) {
        if ((r.methods === undefined || r.methods.has(method)) && r.test(path)) return r.rule;
      }
      return defaultRule;
    },
  });
}

/** A public rule's test, met only when the judged and the forwarded path both meet it. */
function bothReadings(test: PathTest): PathTest {
  return (p) => test(p) && (p.forwarded === p.exact || test(new RequestPath(p.forwarded)));
}

interface Access {
  public: boolean;
  requirement: Requirement;
}

function freezeRule(id: string, access: Access, line: number | undefined): Rule {
  return Object.freeze({ id, public: access.public, requirement: Object.freeze(access.requirement), line });
}

type Report = (path: DocumentPath, message: string, key?: boolean) => void;
type Obj = Record<string, unknown>;

/** Field-by-field checks that report every problem and return undefined for an unusable part. */
class Validator {
  constructor(private readonly report: Report) {}

  object(value: unknown, path: DocumentPath, known: readonly string[]): value is Obj {
    if (typeof value !== "object" || value === null || Array.isArray(value)) {
      this.report(path, "must be a mapping");
      return false;
    }
    for (const key of Object.keys(value)) {
      if (!known.includes(key)) {
        const hint = suggest(key, known);
        this.report([...path, key], `unknown key "${key}"${hint ? ` (did you mean "${hint}"?)` : ""}`, true);
      }
    }
    return true;
  }

  /** `public`, `audiences`, `scopes`, `actors` of a rule or of the default. */
  access(raw: Obj, path: DocumentPath): Access | undefined {
    let ok = true;
    const isPublic = raw.public ?? false;
    if (typeof isPublic !== "boolean") {
      this.report([...path, "public"], "must be true or false");
      ok = false;
    }
    const audiences =
      raw.audiences === undefined ? undefined : this.names(raw.audiences, [...path, "audiences"]);
    if (audiences === null) ok = false;
    let scopes: Requirement["scopes"];
    if (raw.scopes !== undefined) {
      const sp = [...path, "scopes"];
      if (!this.object(raw.scopes, sp, SCOPE_KEYS)) ok = false;
      else {
        const allOf =
          raw.scopes.allOf === undefined ? undefined : this.names(raw.scopes.allOf, [...sp, "allOf"], true);
        const anyOf =
          raw.scopes.anyOf === undefined ? undefined : this.names(raw.scopes.anyOf, [...sp, "anyOf"], true);
        if (allOf === null || anyOf === null) ok = false;
        else if (allOf === undefined && anyOf === undefined) {
          this.report(sp, "needs allOf or anyOf");
          ok = false;
        } else {
          scopes = Object.freeze({
            ...(allOf ? { allOf: Object.freeze(allOf) } : {}),
            ...(anyOf ? { anyOf: Object.freeze(anyOf) } : {}),
          });
        }
      }
    }
    const actors = raw.actors === undefined ? undefined : this.names(raw.actors, [...path, "actors"]);
    if (actors === null) ok = false;
    if (isPublic === true && (audiences !== undefined || scopes !== undefined || actors !== undefined)) {
      this.report([...path, "public"], "a public route takes no audiences, scopes or actors");
      ok = false;
    }
    if (!ok) return undefined;
    const requirement: Requirement = {
      ...(audiences ? { audiences: Object.freeze(audiences) } : {}),
      ...(scopes ? { scopes } : {}),
      ...(actors ? { actors: Object.freeze(actors) } : {}),
    };
    return { public: isPublic === true, requirement };
  }

  /** A non-empty list of non-empty strings (without spaces, for scopes); null when invalid. */
  names(value: unknown, path: DocumentPath, scope = false): string[] | null {
    if (!Array.isArray(value) || value.length === 0) {
      this.report(path, "must be a non-empty list");
      return null;
    }
    let ok = true;
    value.forEach((item, i) => {
      if (typeof item !== "string" || item === "" || (scope && /\s/.test(item))) {
        this.report(
          [...path, i],
          scope ? "must be a scope name without spaces" : "must be a non-empty string",
        );
        ok = false;
      }
    });
    return ok ? (value as string[]) : null;
  }

  /** `guarded`: the rule is not public, so its pattern is matched loosely (see path-matchers.ts). */
  match(
    value: unknown,
    path: DocumentPath,
    guarded: boolean,
  ): { grpc: boolean; methods: ReadonlySet<string> | undefined; test: PathTest } | undefined {
    if (value === undefined) {
      this.report(path.slice(0, -1), 'needs a "match"');
      return undefined;
    }
    if (!this.object(value, path, MATCH_KEYS)) return undefined;
    const kinds = (["path", "prefix", "glob"] as const).filter((k) => value[k] !== undefined);
    if (value.grpc !== undefined) {
      if (kinds.length > 0 || value.methods !== undefined) {
        this.report([...path, "grpc"], "grpc cannot be combined with methods, path, prefix or glob", true);
        return undefined;
      }
      if (typeof value.grpc !== "string") {
        this.report([...path, "grpc"], "must be a string");
        return undefined;
      }
      return this.compile([...path, "grpc"], () => ({
        grpc: true,
        methods: undefined,
        test: grpcMethod(value.grpc as string, guarded),
      }));
    }
    if (kinds.length > 1) {
      this.report([...path, kinds[1]!], `use one of path, prefix and glob, not ${kinds.join(" and ")}`, true);
      return undefined;
    }
    let methods: Set<string> | undefined;
    if (value.methods !== undefined) {
      const list = this.names(value.methods, [...path, "methods"]);
      if (list === null) return undefined;
      const bad = list.findIndex((m) => !/^[A-Za-z]+$/.test(m));
      if (bad !== -1) {
        this.report([...path, "methods", bad], "must be an HTTP method name");
        return undefined;
      }
      methods = new Set(list.map((m) => m.toUpperCase()));
    }
    const kind = kinds[0];
    if (kind === undefined) {
      if (methods === undefined) {
        this.report(path, "needs one of methods, path, prefix, glob or grpc");
        return undefined;
      }
      return { grpc: false, methods, test: () => true };
    }
    const pattern = value[kind];
    if (typeof pattern !== "string" || !pattern.startsWith("/")) {
      this.report([...path, kind], 'must be a string starting with "/"');
      return undefined;
    }
    if (pattern.includes(";")) {
      this.report([...path, kind], 'must not hold ";" (rules ignore or refuse ;-parameters)');
      return undefined;
    }
    // A glob's wildcards stand in for path characters: the rest must be canonical like any path.
    const literal = kind === "glob" ? pattern.replace(/[*?]/g, "x") : pattern;
    const canonical = canonicalPath(literal, {
      maxLength: Number.MAX_SAFE_INTEGER,
      allowEncodedSlashes: false,
    });
    if (!canonical.ok) {
      this.report([...path, kind], `is not a valid path: ${canonical.message}`);
      return undefined;
    }
    if (canonical.path !== literal) {
      this.report([...path, kind], `is not a normalized path (would be "${canonical.path}")`);
      return undefined;
    }
    const make = { path: exactPath, prefix: pathPrefix, glob: pathGlob }[kind];
    return this.compile([...path, kind], () => ({ grpc: false, methods, test: make(pattern, guarded) }));
  }

  private compile<T>(path: DocumentPath, build: () => T): T | undefined {
    try {
      return build();
    } catch (err) {
      this.report(path, (err as Error).message);
      return undefined;
    }
  }
}

function renderPath(path: DocumentPath): string {
  return path.map((p, i) => (typeof p === "number" ? `[${p}]` : i === 0 ? p : `.${p}`)).join("");
}

/** The known key closest to a misspelled one (edit distance ≤ 2), if any. */
function suggest(key: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = 3;
  for (const k of known) {
    const d = distance(key.toLowerCase(), k.toLowerCase());
    if (d < bestDistance) {
      best = k;
      bestDistance = d;
    }
  }
  return best;
}

function distance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = row;
  }
  return prev[b.length]!;
}
