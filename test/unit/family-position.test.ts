import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { type FamilyPosition, familyPosition } from "../../services/token/flows/family-position.ts";
import { decideRefresh } from "../../services/token/flows/refresh-decision.ts";
import { familyRefreshState } from "../../services/token/flows/stored-refresh-state.ts";
import type { FamilyStateRow } from "../../services/token/store/token-store.ts";

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

describe("a v2 token's refresh decision from its session row (familyRefreshState → decideRefresh)", () => {
  const NOW = Date.parse("2026-06-01T12:00:00Z");
  const row = (over: Partial<FamilyStateRow> = {}): FamilyStateRow => ({
    session_id: "0b7c5d2e-1f3a-4b6c-8d9e-0a1b2c3d4e5f",
    client_id: "web",
    subject: "alice",
    tenant: null,
    scopes: [],
    audience: ["orders"],
    claims: null,
    version: 1,
    session_created_at: new Date(NOW - 86_400_000),
    session_revoked_at: null,
    idle_expires_at: new Date(NOW + 86_400_000),
    expires_at: new Date(NOW + 10 * 86_400_000),
    subject_not_before: null,
    refresh_generation: 5,
    refresh_mac_kid: "rk-mac-x",
    refresh_hash: h("t5"),
    refresh_previous_hash: h("t4"),
    // Rotated 4 s ago.
    refresh_rotated_at: new Date(NOW - 4000),
    refresh_successor_kid: "rk-successor-x",
    token_created_at: new Date(NOW - 4000),
    ...over,
  });
  const decide = (r: FamilyStateRow, generation: number, token: string, graceMs = 10_000) => {
    const known = familyRefreshState(r, { generation, hash: h(token) });
    return decideRefresh(known?.state ?? null, { callerClientId: "web", now: new Date(NOW), graceMs }).kind;
  };

  it.each<[string, FamilyStateRow, number, string, number, string]>([
    ["the live token", row(), 5, "t5", 10_000, "rotate"],
    ["the previous token inside the grace window", row(), 4, "t4", 10_000, "replay"],
    ["the previous token after the grace window", row(), 4, "t4", 3_000, "reuse"],
    ["the previous token with replay disabled", row(), 4, "t4", 0, "reuse"],
    ["an older token even inside the grace window", row(), 3, "t3", 10_000, "reuse"],
    ["the first token of the family", row(), 1, "t1", 10_000, "reuse"],
    ["a forged live-generation token", row(), 5, "x5", 10_000, "reject"],
    ["a forged previous-generation token", row(), 4, "x4", 10_000, "reject"],
    ["a generation ahead", row(), 6, "t6", 10_000, "reject"],
    [
      "an older token of a revoked session",
      row({ session_revoked_at: new Date(NOW - 1) }),
      2,
      "t2",
      10_000,
      "reject",
    ],
  ])("%s → %s", (_name, r, generation, token, graceMs, kind) => {
    expect(decide(r, generation, token, graceMs)).toBe(kind);
  });

  it("refuses a forged token like an unknown one, and a revoked session's old token as revoked", () => {
    const forged = familyRefreshState(row(), { generation: 5, hash: h("x5") });
    expect(forged).toBeNull();
    expect(decideRefresh(null, { callerClientId: "web", now: new Date(NOW), graceMs: 0 })).toMatchObject({
      code: "invalid_grant",
    });
    const revoked = familyRefreshState(row({ session_revoked_at: new Date(NOW - 1) }), {
      generation: 2,
      hash: h("t2"),
    });
    expect(
      decideRefresh(revoked!.state, { callerClientId: "web", now: new Date(NOW), graceMs: 0 }),
    ).toMatchObject({
      code: "session_revoked",
    });
  });
});
