import fc from "fast-check";
import { afterAll, beforeAll, expect, it } from "vitest";
import { HANDLER_RULE, type RuleName } from "../support/differential-apps.ts";
import {
  type Credential,
  type FrontEnd,
  type Harness,
  RULE_SCOPE,
  satisfies,
  startHarness,
} from "../support/differential-harness.ts";
import { type RawAnswer, rawRequest } from "../support/raw-http.ts";

/**
 * Property: for any request path built from pieces that routers and normalisers disagree on, the
 * rule the sidecar applied is the rule of the handler the app actually ran, or the request was
 * refused. The apps (see differential-apps.ts) guard each handler by exactly one rule, each rule
 * needs its own scope, and every path is sent with no token, a scope-less token and one token per
 * scope: the set of credentials the sidecar let through names the rule it applied (all of them:
 * `public`; every token: `default`; one token: that rule's), and the apps' records name the
 * handler that ran. A stricter rule than the handler's is allowed only where the contract errs on
 * the guarded side on purpose: a guarded rule matching a path the app routes to its catch-all
 * (case, trailing slash, `;`-parameters), or a guarded rule on a path the app serves as public
 * (`public` rules match the exact-case path only).
 */

const PIECES = [
  "admin",
  "ADMIN",
  "Admin",
  "panel",
  "public",
  "PUBLIC",
  "internal",
  "api",
  "items",
  "42",
  "demo.v1.DemoService",
  "DeleteItem",
  ".",
  "..",
  "..;",
  ";x",
  "admin;x=y",
  "%2e",
  "%2E%2e",
  "%2f",
  "%2F",
  "%5c",
  "%61dmin",
  "%41DMIN",
  "%44eleteItem",
  "\\",
  "",
  "%00",
  "%1f",
  "%7F",
  "é",
  "%C3%A9",
  "%ff",
  "%25",
  "x",
];

const requestArbitrary = fc.record({
  segments: fc.array(fc.constantFrom(...PIECES), { minLength: 1, maxLength: 5 }),
  trailingSlash: fc.boolean(),
  query: fc.constantFrom("", "?q=1", "?/../admin"),
  method: fc.constantFrom("GET", "POST"),
});

type Decision = "allowed" | "denied" | "refused";

/** What the front end did with the request, from its answer (the app's record is checked separately). */
function decisionOf(frontEnd: FrontEnd, answer: RawAnswer): Decision {
  if (answer.status === 401 || answer.status === 403) return "denied";
  // nginx answers 500 when /authz answered neither 2xx nor 401/403 (its 400 for an ambiguous path).
  if (answer.status === 0 || answer.status === 400 || answer.status === 414) return "refused";
  if (frontEnd.kind === "forward-auth" && answer.status === 500) return "refused";
  return "allowed";
}

/** The rule whose credentials are exactly `allowed`; "refused" when none got through; undefined: no rule. */
function ruleOf(allowed: ReadonlySet<string>, credentials: Credential[]): RuleName | "refused" | undefined {
  if (allowed.size === 0) return "refused";
  if (allowed.size === credentials.length) return "public";
  if (!allowed.has("none") && allowed.size === credentials.length - 1) return "default";
  if (allowed.size === 1) {
    const [name] = allowed;
    const rule = (Object.keys(RULE_SCOPE) as (keyof typeof RULE_SCOPE)[]).find((r) => `only-${r}` === name);
    if (rule !== undefined) return rule;
  }
  return undefined;
}

/** True when a request judged by `applied` may run a handler guarded by `handlerRule`. */
function acceptable(applied: RuleName, handlerRule: RuleName): boolean {
  if (applied === handlerRule || handlerRule === "public") return true;
  return handlerRule === "default" && applied !== "public";
}

let harness: Harness;
let credentials: Credential[];

beforeAll(async () => {
  harness = await startHarness({
    proxied: ["express", "fastify-default", "fastify-lenient"],
    forwardAuth: ["express"],
  });
  const c = harness.credentials;
  credentials = [c.none, c.plain, ...Object.values(c.only)];
});
afterAll(async () => {
  await harness?.stop();
});

let sequence = 0;

it("the rule the sidecar applied is the rule of the handler the app ran, or the request was refused", async () => {
  await fc.assert(
    fc.asyncProperty(requestArbitrary, async ({ segments, trailingSlash, query, method }) => {
      const path = `/${segments.join("/")}${trailingSlash ? "/" : ""}${query}`;
      const problems = new Set<string>();
      await Promise.all(
        harness.frontEnds.map(async (frontEnd) => {
          const outcomes = await Promise.all(
            credentials.map(async (credential) => {
              const id = `prop-${sequence++}`;
              const headers: [string, string][] = [
                ["host", "app.test"],
                ["x-probe", id],
              ];
              if (credential.token !== undefined)
                headers.push(["authorization", `Bearer ${credential.token}`]);
              if (method === "POST") headers.push(["content-type", "application/json"]);
              const answer = await rawRequest(frontEnd.port, {
                method,
                target: Buffer.from(path, "utf8"),
                headers,
                body: method === "POST" ? "{}" : undefined,
              });
              return { credential, decision: decisionOf(frontEnd, answer), runs: harness.log.of(id) };
            }),
          );
          const allowed = new Set(
            outcomes.filter((o) => o.decision === "allowed").map((o) => o.credential.name),
          );
          const applied = ruleOf(allowed, credentials);
          if (applied === undefined) {
            problems.add(
              `${frontEnd.name}: let through [${[...allowed]}], which is no rule's set of credentials`,
            );
            return;
          }
          for (const { credential, decision, runs } of outcomes) {
            for (const run of runs) {
              const handlerRule = HANDLER_RULE[run.handler];
              if (decision !== "allowed" || applied === "refused" || !acceptable(applied, handlerRule)) {
                problems.add(
                  `${frontEnd.name}: sidecar applied ${applied}, app ran ${run.handler} (rule ${handlerRule}) as ${run.url}`,
                );
              }
              if (!satisfies(credential, run.handler)) {
                problems.add(`${frontEnd.name}: ${credential.name} reached ${run.handler} as ${run.url}`);
              }
            }
          }
        }),
      );
      expect([...problems], `${method} ${path}`).toEqual([]);
    }),
    { numRuns: 200 },
  );
}, 60_000);
