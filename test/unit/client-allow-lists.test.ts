import { describe, expect, it } from "vitest";
import {
  checkSubjectAndTenant,
  currentGrant,
  type StoredGrant,
} from "../../services/token/flows/client-allow-lists.ts";

const client = {
  allowedAudiences: ["orders", "billing"],
  allowedScopes: ["orders:read"],
  allowedClaims: ["plan"],
  allowedTenants: ["acme"],
  allowedSubjectPrefixes: [] as string[],
};

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return (err as { code?: string }).code;
  }
  return undefined;
}

describe("checkSubjectAndTenant", () => {
  it.each([
    ["no tenant, no lists", {}, "u1", null, undefined],
    ["a listed tenant", {}, "u1", "acme", undefined],
    ["an unlisted tenant", {}, "u1", "globex", "tenant_not_allowed"],
    ["any tenant with *", { allowedTenants: ["*"] }, "u1", "globex", undefined],
    ["a tenant when none is allowed", { allowedTenants: [] }, "u1", "acme", "tenant_not_allowed"],
    ["no tenant when none is allowed", { allowedTenants: [] }, "u1", null, undefined],
    [
      "a subject with a listed prefix",
      { allowedSubjectPrefixes: ["cust:", "emp:"] },
      "emp:7",
      null,
      undefined,
    ],
    ["a subject without one", { allowedSubjectPrefixes: ["cust:"] }, "admin", null, "subject_not_allowed"],
    [
      "a prefix only inside the subject",
      { allowedSubjectPrefixes: ["cust:"] },
      "x-cust:1",
      null,
      "subject_not_allowed",
    ],
  ] as const)("%s", (_name, lists, subject, tenant, code) => {
    expect(codeOf(() => checkSubjectAndTenant({ ...client, ...lists }, subject, tenant))).toBe(code);
  });
});

describe("currentGrant", () => {
  const session: StoredGrant = {
    subject: "u1",
    tenant: "acme",
    scopes: ["orders:read", "orders:write"],
    audience: ["orders", "billing"],
    claims: { plan: "gold", tier: 3 },
  };

  it("keeps only what the client may still grant", () => {
    expect(currentGrant({ ...client, allowedAudiences: ["orders"] }, session)).toEqual({
      scopes: ["orders:read"],
      audience: ["orders"],
      claims: { plan: "gold" },
    });
  });

  it("drops every custom claim the client lost, and every scope", () => {
    expect(currentGrant({ ...client, allowedClaims: [], allowedScopes: [] }, session)).toMatchObject({
      scopes: [],
      claims: null,
    });
  });

  it.each([
    ["no audience left", { allowedAudiences: ["inventory"] }, "audience_not_allowed"],
    ["the tenant no longer served", { allowedTenants: ["globex"] }, "tenant_not_allowed"],
    ["the subject outside the prefixes", { allowedSubjectPrefixes: ["cust:"] }, "subject_not_allowed"],
  ] as const)("refuses %s", (_name, lists, code) => {
    expect(codeOf(() => currentGrant({ ...client, ...lists }, session))).toBe(code);
  });
});
