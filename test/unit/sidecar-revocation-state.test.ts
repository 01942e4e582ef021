import { describe, expect, it } from "vitest";
import type { RevocationEvent } from "../../services/shared/revocation/revocation-events.ts";
import {
  createMemoryRevocationState,
  type RevokableToken,
} from "../../services/sidecar/revocation-state/index.ts";

const NOW_S = 1_800_000_000;
const NOW = NOW_S * 1000;
const base = { id: "e1", at: NOW, until: NOW_S + 600 };

const token = (overrides: Partial<RevokableToken> = {}): RevokableToken => ({
  jti: "jti-1",
  subject: "user-1",
  clientId: "web",
  kid: "kid-1",
  issuedAt: NOW_S - 60,
  sessionId: "sid-1",
  sessionVersion: 2,
  ...overrides,
});

describe("memory revocation state", () => {
  it.each<[string, RevocationEvent, Partial<RevokableToken>, string | null]>([
    ["jti", { ...base, type: "token_revoked", jti: "jti-1" }, {}, "token_revoked"],
    ["other jti", { ...base, type: "token_revoked", jti: "jti-2" }, {}, null],
    ["session", { ...base, type: "session_revoked", sid: "sid-1" }, {}, "session_revoked"],
    [
      "session, service token",
      { ...base, type: "session_revoked", sid: "sid-1" },
      { sessionId: undefined },
      null,
    ],
    [
      "version above sv",
      { ...base, type: "session_version", sid: "sid-1", minVersion: 3 },
      {},
      "session_revoked",
    ],
    ["version equal to sv", { ...base, type: "session_version", sid: "sid-1", minVersion: 2 }, {}, null],
    [
      "subject, iat before",
      { ...base, type: "subject_revoked", sub: "user-1", notBefore: NOW },
      {},
      "subject_revoked",
    ],
    // notBefore is epoch ms: a cut-off rounded down to the token's second spares it (iat * 1000 < notBefore).
    [
      "subject, same second",
      { ...base, type: "subject_revoked", sub: "user-1", notBefore: (NOW_S - 60) * 1000 },
      {},
      null,
    ],
    [
      "subject, iat after",
      { ...base, type: "subject_revoked", sub: "user-1", notBefore: NOW - 120_000 },
      {},
      null,
    ],
    ["client", { ...base, type: "client_disabled", clientId: "web", notBefore: NOW }, {}, "client_disabled"],
    ["key", { ...base, type: "key_revoked", kid: "kid-1" }, {}, "key_revoked"],
  ])("%s", (_name, event, overrides, expected) => {
    const state = createMemoryRevocationState();
    expect(state.apply(event)).toBe(true);
    expect(state.check(token(overrides))).toBe(expected);
  });

  it("merges repeated and out-of-order events by maximum, so replays converge", () => {
    const state = createMemoryRevocationState();
    const v5 = { ...base, type: "session_version", sid: "sid-1", minVersion: 5 } as const;
    const v3 = { ...base, id: "e2", type: "session_version", sid: "sid-1", minVersion: 3 } as const;
    state.apply(v5);
    state.apply(v3);
    state.apply(v5);
    expect(state.check(token({ sessionVersion: 4 }))).toBe("session_revoked");
    expect(state.check(token({ sessionVersion: 5 }))).toBeNull();
    expect(state.size).toBe(1);
  });

  it("ignores event types it does not know", () => {
    const state = createMemoryRevocationState();
    expect(state.apply({ ...base, type: "something_new" } as unknown as RevocationEvent)).toBe(false);
    expect(state.size).toBe(0);
  });

  it("prunes entries past until plus the grace period", () => {
    const state = createMemoryRevocationState({ pruneGraceSeconds: 300 });
    state.apply({ ...base, type: "token_revoked", jti: "a", until: NOW_S });
    state.apply({ ...base, type: "token_revoked", jti: "b", until: NOW_S + 1000 });
    state.apply({ ...base, type: "subject_revoked", sub: "s", notBefore: NOW, until: NOW_S });
    expect(state.size).toBe(3);
    expect(state.prune(NOW_S + 300)).toBe(0);
    expect(state.prune(NOW_S + 301)).toBe(2);
    expect(state.size).toBe(1);
    expect(state.check(token({ jti: "b" }))).toBe("token_revoked");
  });

  it("is stale until confirmed and again after the staleness bound; clear() makes it stale", () => {
    const state = createMemoryRevocationState({ stalenessBoundMs: 30_000 });
    expect(state.isStale(NOW)).toBe(true);
    state.markFresh(NOW);
    expect(state.freshAt).toBe(NOW);
    expect(state.isStale(NOW + 30_000)).toBe(false);
    expect(state.isStale(NOW + 30_001)).toBe(true);
    state.apply({ ...base, type: "token_revoked", jti: "a" });
    state.clear();
    expect(state.size).toBe(0);
    expect(state.isStale(NOW)).toBe(true);
  });

  it("holds a million revoked jtis in well under the sidecar's memory budget", () => {
    const state = createMemoryRevocationState();
    globalThis.gc?.();
    const before = process.memoryUsage().heapUsed;
    for (let i = 0; i < 1_000_000; i++) {
      state.apply({
        id: "x",
        at: NOW,
        until: NOW_S + (i % 3600),
        type: "token_revoked",
        jti: `${i.toString(16).padStart(8, "0")}-7d3c-4c1e-9a2b-5f0e8d7c6b5a`,
      });
    }
    const perEntry = (process.memoryUsage().heapUsed - before) / 1_000_000;
    expect(state.size).toBe(1_000_000);
    // Measured ≈ 85 bytes per entry after a GC (UUID string + Map slot + until); garbage not yet
    // collected inflates this figure, hence the margin. P6 budgets 250 MB RSS for 1M entries.
    expect(perEntry).toBeLessThan(200);
  });
});
