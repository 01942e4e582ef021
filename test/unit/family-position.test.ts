import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { type FamilyPosition, familyPosition } from "../../services/token/flows/family-position.ts";

const h = (s: string) => createHash("sha256").update(s).digest();
/** A family at generation 5: the live token is t5, the one before t4. */
const family = { generation: 5, liveHash: h("t5"), previousHash: h("t4") };

describe("familyPosition: where a MAC-valid v2 token stands in its family", () => {
  it.each<[string, number, string, FamilyPosition]>([
    ["the live token", 5, "t5", "live"],
    ["the live generation with another random part", 5, "x5", "forged"],
    ["the live generation with the previous token's hash", 5, "t4", "forged"],
    ["the previous token (grace replay or reuse)", 4, "t4", "previous"],
    ["the previous generation with another random part", 4, "x4", "forged"],
    ["the previous generation carrying the live hash", 4, "t5", "forged"],
    ["two generations back", 3, "t3", "older"],
    ["the first token of a family at generation 5", 1, "t1", "older"],
    ["a generation the family never reached", 6, "t6", "forged"],
    ["far ahead", 1000, "t1000", "forged"],
  ])("%s → %s", (_name, generation, token, position) => {
    expect(familyPosition(family, { generation, hash: h(token) })).toBe(position);
  });

  it("a session still on legacy tokens (generation 0, no hashes) knows no v2 token", () => {
    const legacy = { generation: 0, liveHash: null, previousHash: null };
    expect(familyPosition(legacy, { generation: 1, hash: h("t1") })).toBe("forged");
  });

  it("a session at generation 1 has no previous v2 token to replay", () => {
    const fresh = { generation: 1, liveHash: h("t1"), previousHash: null };
    expect(familyPosition(fresh, { generation: 1, hash: h("t1") })).toBe("live");
    expect(familyPosition(fresh, { generation: 2, hash: h("t2") })).toBe("forged");
  });
});
