import { describe, expect, it } from "vitest";
import {
  decideRefresh,
  narrowScopes,
  type RefreshDecision,
  type StoredRefreshState,
} from "../../services/token/flows/refresh-decision.ts";

const NOW = new Date("2026-11-23T12:00:00Z");
const at = (offsetMs: number) => new Date(NOW.getTime() + offsetMs);
const S = 1000;

const live: StoredRefreshState = {
  sessionId: "s1",
  clientId: "web",
  sessionCreatedAt: at(-3600 * S),
  sessionRevokedAt: null,
  idleExpiresAt: at(3600 * S),
  expiresAt: at(86400 * S),
  usedAt: null,
  successorUsedAt: null,
  subjectNotBefore: null,
};

const ctx = { callerClientId: "web", now: NOW, graceMs: 10 * S };

describe("decideRefresh", () => {
  it.each<[string, StoredRefreshState | null, Partial<typeof ctx>, RefreshDecision["kind"], string?]>([
    ["a live token rotates", live, {}, "rotate"],
    ["an unknown token", null, {}, "reject", "invalid_grant"],
    [
      "another client's token answers like an unknown one",
      live,
      { callerClientId: "mobile" },
      "reject",
      "invalid_grant",
    ],
    ["a revoked session", { ...live, sessionRevokedAt: at(-S) }, {}, "reject", "session_revoked"],
    [
      "a subject revoked after the session began",
      { ...live, subjectNotBefore: at(-S) },
      {},
      "reject",
      "session_revoked",
    ],
    [
      "a subject revoked at the very instant the session began",
      { ...live, subjectNotBefore: live.sessionCreatedAt },
      {},
      "reject",
      "session_revoked",
    ],
    [
      "a subject revoked 1 ms before the session began",
      { ...live, subjectNotBefore: at(-3600 * S - 1) },
      {},
      "rotate",
    ],
    [
      "a subject revoked before the session began",
      { ...live, subjectNotBefore: at(-7200 * S) },
      {},
      "rotate",
    ],
    ["absolute expiry reached", { ...live, expiresAt: NOW }, {}, "reject", "token_expired"],
    ["idle expiry reached", { ...live, idleExpiresAt: at(-1) }, {}, "reject", "token_expired"],
    ["idle expiry exactly now", { ...live, idleExpiresAt: NOW }, {}, "reject", "token_expired"],
    [
      "reuse after the family expired (absolute) is still reuse",
      { ...live, usedAt: at(-99 * S), expiresAt: at(-S) },
      {},
      "reuse",
    ],
    [
      "reuse after the family idled out is still reuse",
      { ...live, usedAt: at(-99 * S), idleExpiresAt: at(-S) },
      {},
      "reuse",
    ],
    [
      "a grace-window repeat of an expired family is only expired",
      { ...live, usedAt: at(-2 * S), expiresAt: NOW },
      {},
      "reject",
      "token_expired",
    ],
    ["absolute expiry 1 ms ahead", { ...live, expiresAt: at(1) }, {}, "rotate"],
    ["idle expiry 1 ms ahead", { ...live, idleExpiresAt: at(1) }, {}, "rotate"],
    ["a repeat inside the grace window", { ...live, usedAt: at(-2 * S) }, {}, "replay"],
    ["a repeat at the very edge of the window", { ...live, usedAt: at(-10 * S) }, {}, "replay"],
    ["a repeat just after the window", { ...live, usedAt: at(-10 * S - 1) }, {}, "reuse"],
    ["a repeat when the grace window is disabled", { ...live, usedAt: at(-1) }, { graceMs: 0 }, "reuse"],
    [
      "a repeat at the same instant, grace window disabled",
      { ...live, usedAt: NOW },
      { graceMs: 0 },
      "reuse",
    ],
    [
      "a repeat after the successor was used",
      { ...live, usedAt: at(-S), successorUsedAt: at(-1) },
      {},
      "reuse",
    ],
    [
      "reuse of a revoked family is still refused, not re-revoked",
      { ...live, usedAt: at(-99 * S), sessionRevokedAt: at(-S) },
      {},
      "reject",
      "session_revoked",
    ],
  ])("%s", (_label, state, overrides, kind, code) => {
    const decision = decideRefresh(state, { ...ctx, ...overrides });
    expect(decision.kind).toBe(kind);
    if (code) expect(decision).toMatchObject({ code });
    else expect(decision).toEqual({ kind });
  });

  it("tells why it refused", () => {
    const message = (state: StoredRefreshState | null) =>
      (decideRefresh(state, ctx) as { message?: string }).message;
    expect(message(null)).toBe("refresh token is not valid");
    expect(message({ ...live, sessionRevokedAt: at(-S) })).toBe("the session has been revoked");
    expect(message({ ...live, subjectNotBefore: at(-S) })).toBe("the subject's sessions have been revoked");
    expect(message({ ...live, expiresAt: NOW })).toBe("the session has reached its absolute lifetime");
    expect(message({ ...live, idleExpiresAt: NOW })).toBe("the session expired after being idle");
  });
});

describe("narrowScopes", () => {
  it("keeps the session's scopes when none are asked for", () => {
    expect(narrowScopes(["a", "b"], [])).toEqual({ scopes: ["a", "b"] });
  });
  it("narrows to a subset, without duplicates", () => {
    expect(narrowScopes(["a", "b", "c"], ["c", "a", "c"])).toEqual({ scopes: ["c", "a"] });
  });
  it("keeps a copy, not the session's own array", () => {
    const session = ["a", "b"];
    const result = narrowScopes(session, []) as { scopes: string[] };
    result.scopes.push("c");
    expect(session).toEqual(["a", "b"]);
  });
  it("refuses to widen, naming the extra scopes", () => {
    expect(narrowScopes(["a"], ["a", "admin"])).toEqual({
      error: "scopes not granted to this session: admin",
    });
    expect(narrowScopes(["a"], ["root", "a", "admin"])).toEqual({
      error: "scopes not granted to this session: root admin",
    });
  });
});
