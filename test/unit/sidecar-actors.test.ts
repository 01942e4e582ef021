import { describe, expect, it } from "vitest";
import { GatehouseError } from "../../services/shared/errors/gatehouse-error.ts";
import { denialOf } from "../../services/sidecar/control/denial.ts";
import { identityHeaders, isGatehouseHeader } from "../../services/sidecar/control/identity-headers.ts";
import { compilePolicy, PolicyError } from "../../services/sidecar/policy/index.ts";
import { checkActor, MAX_ACTORS, readClaims } from "../../services/sidecar/verifier/claim-checks.ts";

/** The sidecar's side of token exchange: the `act` chain read, handed to the app, and policed. */

const base = {
  iss: "https://auth.test",
  sub: "alice",
  aud: "ledger",
  exp: 2_000_000_000,
  iat: 1_900_000_000,
  jti: "j1",
  client_id: "billing",
};

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return (err as GatehouseError).code;
  }
  return undefined;
}

describe("reading act", () => {
  it("reads the chain outermost first", () => {
    const { identity } = readClaims({ ...base, act: { sub: "billing", act: { sub: "orders" } } }, "k");
    expect(identity.actors).toEqual(["billing", "orders"]);
    expect(Object.isFrozen(identity.actors)).toBe(true);
  });

  it("leaves actors absent without act", () => {
    expect(readClaims({ ...base }, "k").identity.actors).toBeUndefined();
  });

  it.each([
    ["a string", "billing"],
    ["null", null],
    ["an array", [{ sub: "billing" }]],
    ["no sub", { act: { sub: "orders" } }],
    ["a nested actor with an empty sub", { sub: "billing", act: { sub: "" } }],
    ["a nested actor that is a number", { sub: "billing", act: 5 }],
    [
      `deeper than ${MAX_ACTORS}`,
      JSON.parse(`${'{"sub":"s","act":'.repeat(MAX_ACTORS)}{"sub":"z"}${"}".repeat(MAX_ACTORS)}`),
    ],
  ])("refuses %s as malformed_token", (_label, act) => {
    expect(codeOf(() => readClaims({ ...base, act }, "k"))).toBe("malformed_token");
  });
});

describe("x-gatehouse-actor", () => {
  const identityOf = (act: unknown) => readClaims({ ...base, act }, "k").identity;
  const actorHeader = (act: unknown) =>
    identityHeaders(identityOf(act), false).find(([name]) => name === "x-gatehouse-actor")?.[1];

  it("is the chain, outermost first, comma-separated", () => {
    expect(actorHeader({ sub: "billing", act: { sub: "orders" } })).toBe("billing,orders");
    expect(actorHeader({ sub: "billing" })).toBe("billing");
  });

  it("percent-encodes each entry so a comma cannot forge another actor", () => {
    expect(actorHeader({ sub: "evil,orders", act: { sub: "zoë x" } })).toBe("evil%2Corders,zo%C3%AB%20x");
  });

  it("is absent for a token without act", () => {
    expect(identityHeaders(readClaims({ ...base }, "k").identity, false).map(([n]) => n)).not.toContain(
      "x-gatehouse-actor",
    );
  });

  it("is one of the headers only the sidecar sets, in any spelling", () => {
    for (const name of ["x-gatehouse-actor", "X-Gatehouse-Actor", "x_gatehouse_actor"]) {
      expect(isGatehouseHeader(name)).toBe(true);
    }
  });
});

describe("checkActor (policy `actors`)", () => {
  it.each([
    ["no requirement, no actor", undefined, undefined, undefined],
    ["no requirement, an actor", ["billing"], undefined, undefined],
    ["the immediate actor is listed", ["billing", "orders"], ["billing"], undefined],
    ["one of several listed", ["billing"], ["payroll", "billing"], undefined],
    ["only an earlier actor is listed", ["billing", "orders"], ["orders"], "actor_not_allowed"],
    ["no actor at all", undefined, ["billing"], "actor_not_allowed"],
  ] as const)("%s", (_label, actors, required, code) => {
    expect(codeOf(() => checkActor(actors, required))).toBe(code);
  });

  it("answers 403 with an insufficient_scope challenge naming actor_not_allowed", () => {
    const denial = denialOf(
      new GatehouseError("actor_not_allowed", "route does not admit this actor", {
        metadata: { actor: "billing" },
      }),
    );
    expect(denial).toMatchObject({ httpStatus: 403, grpcStatus: 7, code: "actor_not_allowed" });
    expect(denial.wwwAuthenticate).toBe(
      'Bearer realm="gatehouse", error="insufficient_scope", error_description="actor_not_allowed"',
    );
  });
});

describe("policy `actors`", () => {
  it("compiles onto a rule's and the default's requirement", () => {
    const policy = compilePolicy(
      "default: { actors: [gateway] }\nrules:\n  - match: { prefix: /ledger }\n    actors: [billing, payroll]\n",
    );
    expect(policy.match({ method: "GET", path: "/ledger/x" }).requirement).toEqual({
      actors: ["billing", "payroll"],
    });
    expect(policy.match({ method: "GET", path: "/other" }).requirement).toEqual({ actors: ["gateway"] });
  });

  it.each([
    [
      "an empty list",
      "rules:\n  - { match: { path: /a }, actors: [] }\n",
      "rules[0].actors: must be a non-empty list",
    ],
    [
      "a non-string",
      "rules:\n  - { match: { path: /a }, actors: [5] }\n",
      "rules[0].actors[0]: must be a non-empty string",
    ],
    [
      "a scalar",
      "rules:\n  - { match: { path: /a }, actors: billing }\n",
      "rules[0].actors: must be a non-empty list",
    ],
    [
      "on a public rule",
      "rules:\n  - { match: { path: /a }, public: true, actors: [billing] }\n",
      "rules[0].public: a public route takes no audiences, scopes or actors",
    ],
    [
      "a misspelt key",
      "rules:\n  - { match: { path: /a }, actor: [billing] }\n",
      'unknown key "actor" (did you mean "actors"?)',
    ],
  ])("refuses %s", (_label, text, message) => {
    try {
      compilePolicy(text);
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(PolicyError);
      expect((err as PolicyError).problems.map((p) => `${p.path}: ${p.message}`).join("\n")).toContain(
        message,
      );
    }
  });
});
