import { describe, expect, it } from "vitest";
import {
  actorChain,
  checkMayAct,
  exchangedGrant,
  exchangedLifetimeSeconds,
  MAX_ACTOR_CHAIN,
  nestActor,
  readActorClaim,
} from "../../services/token/flows/token-exchange-rules.ts";
import { checkCustomClaims } from "../../services/token/tokens/access-token-claims.ts";

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return (err as { code?: string }).code;
  }
  return undefined;
}

const client = {
  allowedAudiences: ["orders", "billing", "https://billing.example/api"],
  allowedScopes: ["orders:read", "billing:read", "billing:write"],
  allowedClaims: ["plan"],
};
const subject = {
  scopes: ["orders:read", "billing:read", "profile"],
  custom: { plan: "gold", nickname: "al" },
};

describe("actor chains (RFC 8693 §4.1)", () => {
  it("puts the new actor outermost and the previous chain inside it", () => {
    const first = nestActor("svc-a", null);
    expect(first).toEqual({ sub: "svc-a" });
    const second = nestActor("svc-b", first);
    expect(second).toEqual({ sub: "svc-b", act: { sub: "svc-a" } });
    expect(actorChain(second)).toEqual(["svc-b", "svc-a"]);
    expect(actorChain(null)).toEqual([]);
  });

  it(`refuses a chain longer than ${MAX_ACTOR_CHAIN} actors`, () => {
    let act = null as ReturnType<typeof nestActor> | null;
    for (let i = 0; i < MAX_ACTOR_CHAIN; i++) act = nestActor(`svc-${i}`, act);
    expect(actorChain(act)).toHaveLength(MAX_ACTOR_CHAIN);
    expect(codeOf(() => nestActor("one-more", act))).toBe("invalid_request");
  });

  it.each([
    ["absent", undefined, null],
    ["one actor", { sub: "a" }, { sub: "a" }],
    ["nested", { sub: "b", act: { sub: "a" } }, { sub: "b", act: { sub: "a" } }],
    ["extra members dropped", { sub: "a", iss: "x" }, { sub: "a" }],
  ])("reads an act claim: %s", (_label, value, expected) => {
    expect(readActorClaim(value)).toEqual(expected);
  });

  it.each([
    ["a string", "svc-a"],
    ["null", null],
    ["an array", [{ sub: "a" }]],
    ["no sub", { act: { sub: "a" } }],
    ["an empty sub", { sub: "" }],
    ["a nested act without sub", { sub: "b", act: {} }],
    [
      "nested too deep",
      JSON.parse(`${'{"sub":"a","act":'.repeat(MAX_ACTOR_CHAIN)}{"sub":"z"}${"}".repeat(MAX_ACTOR_CHAIN)}`),
    ],
  ])("refuses an unreadable act claim: %s", (_label, value) => {
    expect(codeOf(() => readActorClaim(value))).toBe("invalid_grant");
  });
});

describe("checkMayAct (RFC 8693 §4.4)", () => {
  it.each([
    ["no may_act: anyone", undefined, "svc-a", undefined],
    ["the named party", { sub: "svc-a" }, "svc-a", undefined],
    ["another party", { sub: "svc-a" }, "svc-b", "actor_not_allowed"],
    ["unreadable may_act admits nobody", "svc-a", "svc-a", "actor_not_allowed"],
    ["may_act without sub admits nobody", { iss: "x" }, "svc-a", "actor_not_allowed"],
    ["null may_act admits nobody", null, "svc-a", "actor_not_allowed"],
  ])("%s", (_label, mayAct, actor, code) => {
    expect(codeOf(() => checkMayAct(mayAct, actor))).toBe(code);
  });

  it("may_act is settable by Issue only by a client allowed it, and only as { sub }", () => {
    expect(codeOf(() => checkCustomClaims({ may_act: { sub: "svc-a" } }, ["plan"]))).toBe(
      "claim_not_allowed",
    );
    expect(codeOf(() => checkCustomClaims({ may_act: { sub: "svc-a" } }, ["may_act"]))).toBeUndefined();
    for (const bad of ["svc-a", { sub: "" }, { sub: "a", iss: "b" }, [], null]) {
      expect(codeOf(() => checkCustomClaims({ may_act: bad }, ["may_act"]))).toBe("invalid_request");
    }
    // Every other reserved name stays reserved even when listed.
    expect(codeOf(() => checkCustomClaims({ act: { sub: "x" } }, ["act"]))).toBe("claim_not_allowed");
  });
});

describe("exchangedGrant", () => {
  it("grants the audience asked for and the scopes of subject ∩ client by default", () => {
    expect(exchangedGrant(client, subject, { audience: ["billing"], scopes: [] })).toEqual({
      audience: ["billing"],
      scopes: ["orders:read", "billing:read"],
      custom: { plan: "gold" },
    });
  });

  it("narrows scopes to those asked for", () => {
    expect(
      exchangedGrant(client, subject, { audience: ["billing"], scopes: ["billing:read"] }).scopes,
    ).toEqual(["billing:read"]);
  });

  it("carries no custom claims when the client may set none of them", () => {
    expect(
      exchangedGrant({ ...client, allowedClaims: [] }, subject, { audience: ["orders"], scopes: [] }).custom,
    ).toBeNull();
  });

  it.each([
    ["no audience", { audience: [], scopes: [] }, "invalid_request"],
    ["an audience the client may not request", { audience: ["hr"], scopes: [] }, "audience_not_allowed"],
    ["one bad audience among good ones", { audience: ["orders", "hr"], scopes: [] }, "audience_not_allowed"],
    [
      "a scope the subject token lacks (widening)",
      { audience: ["billing"], scopes: ["billing:write"] },
      "scope_not_allowed",
    ],
    ["a scope the client lacks", { audience: ["billing"], scopes: ["profile"] }, "scope_not_allowed"],
  ])("refuses %s", (_label, requested, code) => {
    expect(codeOf(() => exchangedGrant(client, subject, requested))).toBe(code);
  });
});

describe("exchangedLifetimeSeconds", () => {
  it.each([
    ["the client's lifetime when the subject token outlives it", 1000, 1000 + 3600, 600, 3600, 600],
    ["cut to the subject token's remaining lifetime", 1000, 1000 + 90, 600, 3600, 90],
    ["one second left", 1000, 1001, 600, 3600, 1],
    ["the service maximum", 1000, 1000 + 9000, 7200, 3600, 3600],
  ])("%s", (_label, now, exp, ttl, max, expected) => {
    expect(exchangedLifetimeSeconds(now, exp, ttl, max)).toBe(expected);
  });
});
