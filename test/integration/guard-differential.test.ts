import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RuleName } from "../support/differential-apps.ts";
import {
  type Credential,
  type FrontEnd,
  type Harness,
  satisfies,
  spoofedHeaders,
  startHarness,
} from "../support/differential-harness.ts";
import { h2cRequest, type RawAnswer, rawRequest } from "../support/raw-http.ts";

/**
 * Differential test of the guard's contract (DESIGN.md, "The guard's contract") against real
 * frameworks: Express 5 and Fastify (defaults, and the lenient router options real apps set) behind
 * the sidecar's proxy, and behind a real nginx asking the sidecar's forward-auth. Each probe goes out
 * as exact bytes with no token, with a token lacking the rule's scope, and with the right token.
 * Judged by what the apps' handlers recorded, never by the status code alone:
 * - no request reaches a handler whose rule its credential does not satisfy;
 * - no identity header the client sent (`x-gatehouse-*`, `x_gatehouse_*`) reaches the app;
 * - the right token reaches a handler, with the canonical path (proxy) or the path as sent (nginx,
 *   which cannot rewrite it: forward-auth refuses a path that is not canonical).
 */

interface Probe {
  name: string;
  method?: string;
  /** The request target as sent (a string is sent as latin1 bytes). */
  target: string | Buffer;
  /** The rule the contract applies to the canonical path, or null: refused as ambiguous. */
  rule: RuleName | null;
  /** The canonical path (and original query) the app must receive through the proxy. */
  canonical?: string;
  /** The status of a refusal (default 400). */
  refusal?: number;
  headers?: [string, string][];
  body?: string;
  /** Send over h2c (proxy only): these headers as HTTP/2 fields. */
  h2?: boolean;
  /** The contract lets the sidecar either serve this with the right token or refuse it. */
  mayRefuse?: boolean;
}

const GRPC = "/demo.v1.DemoService/DeleteItem";
const SPOOF = "mallory-spoofed";
const spoof: [string, string][] = [
  ["X-Gatehouse-Subject", SPOOF],
  ["x_gatehouse_subject", SPOOF],
  ["X_GATEHOUSE_SCOPES", `admin internal ${SPOOF}`],
  ["x-gatehouse-scopes", `admin ${SPOOF}`],
  ["x_gatehouse-tenant", SPOOF],
  ["X-Gatehouse-Actor", SPOOF],
  ["x_gatehouse_actor", SPOOF],
];
const post = (contentType: string): Pick<Probe, "method" | "headers" | "body"> => ({
  method: "POST",
  headers: [["content-type", contentType]],
  body: contentType.includes("json") ? "{}" : "\0\0\0\0\0",
});

const PROBES: Probe[] = [
  // Exact paths: the baseline every front end must get right.
  { name: "/admin", target: "/admin", rule: "admin" },
  { name: "/admin/panel", target: "/admin/panel", rule: "admin" },
  { name: "/internal", target: "/internal", rule: "internal" },
  { name: "/public/x", target: "/public/x", rule: "public" },
  { name: "/api/items/42", target: "/api/items/42", rule: "items" },
  { name: "/other (catch-all)", target: "/other", rule: "default" },
  // Case and trailing slash: guarded rules ignore both, as Express's router does.
  { name: "/ADMIN", target: "/ADMIN", rule: "admin" },
  { name: "/Admin/panel", target: "/Admin/panel", rule: "admin" },
  { name: "/INTERNAL", target: "/INTERNAL", rule: "internal" },
  { name: "/internal/", target: "/internal/", rule: "internal" },
  { name: "/admin/", target: "/admin/", rule: "admin" },
  { name: "/API/Items/42", target: "/API/Items/42", rule: "items" },
  { name: "/api/items/42/", target: "/api/items/42/", rule: "items" },
  { name: "/PUBLIC/x is not public", target: "/PUBLIC/x", rule: "default" },
  // ;-parameters: ignored by guarded rules (Tomcat/Spring strip them before routing).
  { name: "/admin;x=y", target: "/admin;x=y", rule: "admin" },
  { name: "/admin/panel;jsessionid=1", target: "/admin/panel;jsessionid=1", rule: "admin" },
  // Normalised: the policy and the app both see the canonical path.
  { name: "//admin", target: "//admin", rule: "admin", canonical: "/admin" },
  { name: "/%61dmin", target: "/%61dmin", rule: "admin", canonical: "/admin" },
  { name: "/./admin", target: "/./admin", rule: "admin", canonical: "/admin" },
  { name: "/public/../admin", target: "/public/../admin", rule: "admin", canonical: "/admin" },
  { name: "/public/%2e%2e/admin", target: "/public/%2e%2e/admin", rule: "admin", canonical: "/admin" },
  {
    name: "/public/%2E%2E/internal",
    target: "/public/%2E%2E/internal",
    rule: "internal",
    canonical: "/internal",
  },
  { name: "/admin/panel/..", target: "/admin/panel/..", rule: "admin", canonical: "/admin/" },
  { name: "/api//items/42", target: "/api//items/42", rule: "items", canonical: "/api/items/42" },
  { name: "/admin?next=/public/", target: "/admin?next=/public/", rule: "admin" },
  { name: "/public/x?/../admin", target: "/public/x?/../admin", rule: "public" },
  { name: "/%C3%A9 (UTF-8 escape)", target: "/%c3%a9", rule: "default", canonical: "/%C3%A9" },
  // Ambiguous: refused before any rule is looked at.
  { name: "/public/..;/admin", target: "/public/..;/admin", rule: null },
  { name: "/public/..;x/admin", target: "/public/..;x/admin", rule: null },
  { name: "/public/%2e%2e;/admin", target: "/public/%2e%2e;/admin", rule: null },
  { name: "/public/..\\admin", target: "/public/..\\admin", rule: null },
  { name: "/public/..%2fadmin", target: "/public/..%2fadmin", rule: null },
  { name: "/public/..%2Fadmin", target: "/public/..%2Fadmin", rule: null },
  { name: "/public/..%5cadmin", target: "/public/..%5cadmin", rule: null },
  { name: "/admin%2F", target: "/admin%2F", rule: null },
  { name: "/../admin (above root)", target: "/../admin", rule: null },
  { name: "/admin%00", target: "/admin%00", rule: null },
  { name: "/adm%0Ain", target: "/adm%0Ain", rule: null },
  { name: "/admin%7F", target: "/admin%7F", rule: null },
  { name: "/%FF (invalid UTF-8)", target: "/%FF", rule: null },
  { name: "/%C3 (truncated UTF-8)", target: "/%C3", rule: null },
  { name: "raw non-ASCII /é", target: Buffer.from("/é", "utf8"), rule: null },
  { name: "path over 4096 bytes", target: `/admin/${"a".repeat(4100)}`, rule: null, refusal: 414 },
  // gRPC method rule: the same path whatever the content type, and through normalisation.
  { name: `${GRPC} application/grpc`, target: GRPC, rule: "grpc-delete", ...post("application/grpc") },
  {
    name: `${GRPC} application/grpc+proto`,
    target: GRPC,
    rule: "grpc-delete",
    ...post("application/grpc+proto"),
  },
  {
    name: `${GRPC} application/grpc-web`,
    target: GRPC,
    rule: "grpc-delete",
    ...post("application/grpc-web+proto"),
  },
  {
    name: `${GRPC} application/json (Connect)`,
    target: GRPC,
    rule: "grpc-delete",
    ...post("application/json"),
  },
  {
    name: `${GRPC} application/proto (Connect)`,
    target: GRPC,
    rule: "grpc-delete",
    ...post("application/proto"),
  },
  { name: `${GRPC} no content type`, target: GRPC, rule: "grpc-delete", method: "POST", body: "x" },
  {
    name: "/demo.v1.DemoService//DeleteItem grpc",
    target: "/demo.v1.DemoService//DeleteItem",
    canonical: GRPC,
    rule: "grpc-delete",
    ...post("application/grpc"),
  },
  {
    name: "/demo.v1.DemoService/%44eleteItem grpc",
    target: "/demo.v1.DemoService/%44eleteItem",
    canonical: GRPC,
    rule: "grpc-delete",
    ...post("application/grpc"),
  },
  {
    name: "/demo.v1.DemoService/x/../DeleteItem grpc",
    target: "/demo.v1.DemoService/x/../DeleteItem",
    canonical: GRPC,
    rule: "grpc-delete",
    ...post("application/grpc"),
  },
  {
    name: "/demo.v1.DemoService//DeleteItem json",
    target: "/demo.v1.DemoService//DeleteItem",
    canonical: GRPC,
    rule: "grpc-delete",
    ...post("application/json"),
  },
  {
    name: "/demo.v1.demoservice/deleteitem json (case)",
    target: "/demo.v1.demoservice/deleteitem",
    rule: "grpc-delete",
    ...post("application/json"),
  },
  // Methods.
  { name: "HEAD /admin", method: "HEAD", target: "/admin", rule: "admin" },
  { name: "OPTIONS /admin", method: "OPTIONS", target: "/admin", rule: "admin" },
  { name: "DELETE /internal", method: "DELETE", target: "/internal", rule: "internal" },
  { name: "PATCH /ADMIN/panel", method: "PATCH", target: "/ADMIN/panel", rule: "admin" },
  { name: "lowercase method get /admin", method: "get", target: "/admin", rule: null },
  // Absolute-form targets: judged (and forwarded) by their path, or refused.
  {
    name: "absolute-form http://127.0.0.1/admin",
    target: "http://127.0.0.1/admin",
    rule: "admin",
    canonical: "/admin",
    mayRefuse: true,
  },
  {
    name: "absolute-form http://h/public/../admin",
    target: "http://h/public/../admin",
    rule: "admin",
    canonical: "/admin",
    mayRefuse: true,
  },
  // Identity headers sent by the client never reach the app, whatever their spelling.
  { name: "spoofed identity headers on /public/x", target: "/public/x", rule: "public", headers: spoof },
  { name: "spoofed identity headers on /admin", target: "/admin", rule: "admin", headers: spoof },
  {
    name: "spoofed X-Forwarded-For/-Host/-Proto",
    target: "/admin",
    rule: "admin",
    headers: [
      ["x-forwarded-for", "6.6.6.6"],
      ["x-forwarded-host", "evil.example"],
      ["x-forwarded-proto", "gopher"],
    ],
  },
  // Forward-auth reads only the configured pair (nginx: X-Original-*); a differing client-sent
  // Traefik pair is ignored or refused, never believed.
  {
    name: "client X-Forwarded-Uri: /public/x on /admin",
    target: "/admin",
    rule: "admin",
    headers: [
      ["x-forwarded-uri", "/public/x"],
      ["x-forwarded-method", "GET"],
    ],
    mayRefuse: true,
  },
  // h2c (prior knowledge): the same contract on the HTTP/2 front end.
  { name: "h2c /ADMIN", target: "/ADMIN", rule: "admin", h2: true },
  { name: "h2c //admin", target: "//admin", rule: "admin", canonical: "/admin", h2: true },
  { name: "h2c /public/..;/admin", target: "/public/..;/admin", rule: null, h2: true },
  {
    name: "h2c /demo.v1.DemoService//DeleteItem grpc",
    target: "/demo.v1.DemoService//DeleteItem",
    canonical: GRPC,
    rule: "grpc-delete",
    h2: true,
    ...post("application/grpc"),
  },
  {
    name: "h2c /demo.v1.DemoService/DeleteItem application/proto",
    target: GRPC,
    rule: "grpc-delete",
    h2: true,
    ...post("application/proto"),
  },
  { name: "h2c spoofed x_gatehouse_subject", target: "/public/x", rule: "public", h2: true, headers: spoof },
];

let harness: Harness;

beforeAll(async () => {
  harness = await startHarness({
    proxied: ["express", "fastify-default", "fastify-lenient"],
    forwardAuth: ["express", "fastify-default"],
  });
});
afterAll(async () => {
  await harness?.stop();
});

/** The right credential for a rule, and one that lacks it (a valid token with everything else). */
function credentialsFor(rule: RuleName | null): { right: Credential | undefined; wrong: Credential[] } {
  const c = harness.credentials;
  switch (rule) {
    case null:
      return { right: undefined, wrong: [c.none, c.plain, c.foreign, ...Object.values(c.only)] };
    case "public":
      return { right: c.none, wrong: [c.foreign] };
    case "default":
      return { right: c.plain, wrong: [c.none, c.foreign] };
    default:
      return { right: c.only[rule], wrong: [c.none, c.allBut[rule], c.foreign] };
  }
}

let sequence = 0;

async function send(
  frontEnd: FrontEnd,
  probe: Probe,
  credential: Credential,
): Promise<{ id: string; answer: RawAnswer }> {
  const id = `probe-${sequence++}`;
  const headers: [string, string][] = [["x-probe", id], ...(probe.headers ?? [])];
  if (credential.token !== undefined) headers.push(["authorization", `Bearer ${credential.token}`]);
  const method = probe.method ?? "GET";
  if (probe.h2) {
    const fields: Record<string, string> = {};
    for (const [k, v] of headers) fields[k.toLowerCase()] = v;
    const answer = await h2cRequest(frontEnd.port, {
      method,
      path: String(probe.target),
      headers: fields,
      body: probe.body,
    });
    return { id, answer };
  }
  const answer = await rawRequest(frontEnd.port, {
    method,
    target: probe.target,
    headers: [["host", "app.test"], ...headers],
    body: probe.body,
  });
  return { id, answer };
}

const pathText = (target: string | Buffer) => (Buffer.isBuffer(target) ? target.toString("latin1") : target);
/** An absolute-form target's origin form (what nginx passes on): `http://h/a?b` → `/a?b`. */
const originForm = (target: string) => target.replace(/^[a-z][a-z0-9+.-]*:\/\/[^/]*/i, "");
const pathOnly = (target: string) => target.split("?")[0]!;
/** Upper-cases percent-escapes: forward-auth accepts `%2e`-style case differences as canonical. */
const escapesUpper = (path: string) => path.replace(/%[0-9a-f]{2}/gi, (e) => e.toUpperCase());
const short = (text: string) => (text.length > 100 ? `${text.slice(0, 97)}...` : text);

function describeRuns(id: string): string {
  return short(
    JSON.stringify(harness.log.of(id).map((r) => ({ app: r.app, handler: r.handler, url: r.url }))),
  );
}

describe.each([
  "proxy→express",
  "proxy→fastify-default",
  "proxy→fastify-lenient",
  "nginx→express",
  "nginx→fastify-default",
])("%s", (frontEndName) => {
  const probes = frontEndName.startsWith("nginx") ? PROBES.filter((p) => !p.h2) : PROBES;
  it.each(probes.map((p) => [p.name, p] as const))("%s", async (_name, probe) => {
    const frontEnd = harness.frontEnds.find((f) => f.name === frontEndName)!;
    const sent = pathText(probe.target);
    // nginx passes on the origin form of an absolute-form target, and asks /authz about that.
    const target = frontEnd.kind === "forward-auth" ? originForm(sent) : sent;
    const canonical = probe.canonical ?? target;
    // Forward-auth cannot rewrite the path: it must refuse one whose canonical form differs.
    const refused =
      probe.rule === null ||
      (frontEnd.kind === "forward-auth" &&
        pathOnly(escapesUpper(canonical)) !== pathOnly(escapesUpper(target)));
    const { right, wrong } = credentialsFor(probe.rule);
    const problems: string[] = [];

    for (const credential of [...wrong, ...(right ? [right] : [])]) {
      const before = problems.length;
      const { id, answer } = await send(frontEnd, probe, credential);
      const runs = harness.log.of(id);
      for (const run of runs) {
        if (refused)
          problems.push(`${credential.name}: refused probe reached ${run.handler} as ${short(run.url)}`);
        if (!satisfies(credential, run.handler)) {
          problems.push(
            `${credential.name}: reached ${run.handler} (${run.app}) as ${run.method} ${short(run.url)}`,
          );
        }
        const spoofed = spoofedHeaders(run, SPOOF);
        if (spoofed.length > 0)
          problems.push(`${credential.name}: spoofed headers reached the app: ${spoofed}`);
        const subject = run.headers["x-gatehouse-subject"];
        if (credential.subject !== undefined && subject !== undefined && subject !== credential.subject) {
          problems.push(`${credential.name}: app saw subject ${String(subject)}`);
        }
        if (frontEnd.kind === "proxy") {
          // No GATEHOUSE_TRUSTED_PROXIES: the sidecar overwrites what the caller said about itself.
          const forwarded = ["x-forwarded-for", "x-forwarded-host", "x-forwarded-proto"]
            .map((name) => `${name}: ${String(run.headers[name])}`)
            .filter((line) => /6\.6\.6\.6|evil\.example|gopher/.test(line));
          if (forwarded.length > 0)
            problems.push(`${credential.name}: caller's ${forwarded} reached the app`);
        }
      }
      if (refused && frontEnd.kind === "proxy" && answer.status !== (probe.refusal ?? 400)) {
        problems.push(
          `${credential.name}: refused probe answered ${answer.status}, not ${probe.refusal ?? 400}`,
        );
      }
      if (credential === right && !refused) {
        if (runs.length === 0) {
          if (!probe.mayRefuse || ![400, 500].includes(answer.status)) {
            problems.push(`right token (${credential.name}) reached no handler: HTTP ${answer.status}`);
          }
        } else {
          const run = runs[0]!;
          const expectedUrl = frontEnd.kind === "proxy" ? canonical : target;
          if (run.url !== expectedUrl)
            problems.push(`app received ${short(run.url)}, expected ${short(expectedUrl)}`);
          if (credential.subject !== undefined && run.headers["x-gatehouse-subject"] !== credential.subject) {
            problems.push(`right token: app saw subject ${String(run.headers["x-gatehouse-subject"])}`);
          }
        }
      }
      if (problems.length > before && runs.length > 0) problems.push(`  runs: ${describeRuns(id)}`);
    }
    expect(problems).toEqual([]);
  });
});
