import { randomUUID } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { createUuidUntilTable, parseUuid } from "../../services/sidecar/revocation-state/uuid-until-table.ts";

describe("uuid until table", () => {
  it("parses only canonical lowercase UUIDs", () => {
    const out = new Uint32Array(4);
    expect(parseUuid("00112233-4455-6677-8899-aabbccddeeff", out)).toBe(true);
    expect([...out]).toEqual([0x00112233, 0x44556677, 0x8899aabb, 0xccddeeff]);
    for (const bad of [
      "00112233-4455-6677-8899-AABBCCDDEEFF",
      "00112233445566778899aabbccddeeff",
      "00112233-4455-6677-8899-aabbccddeef",
      "00112233-4455-6677-8899-aabbccddeeffa",
      "0011223g-4455-6677-8899-aabbccddeeff",
      "00112233_4455-6677-8899-aabbccddeeff",
      "",
    ]) {
      expect(parseUuid(bad, out)).toBe(false);
    }
  });

  it("refuses non-UUID ids, so callers can keep them elsewhere", () => {
    const t = createUuidUntilTable();
    expect(t.set("not-a-uuid", 10)).toBe(false);
    expect(t.get("not-a-uuid")).toBeUndefined();
    expect(t.size).toBe(0);
  });

  it("merges by maximum and forgets nothing while growing", () => {
    const t = createUuidUntilTable();
    const ids = Array.from({ length: 5000 }, () => randomUUID());
    ids.forEach((id, i) => {
      t.set(id, 1000 + i);
    });
    t.set(ids[0]!, 500);
    t.set(ids[1]!, 9999);
    expect(t.size).toBe(5000);
    expect(t.get(ids[0]!)).toBe(1000);
    expect(t.get(ids[1]!)).toBe(9999);
    for (const [i, id] of ids.entries()) if (i > 1) expect(t.get(id)).toBe(1000 + i);
    expect(t.get(randomUUID())).toBeUndefined();
  });

  it("keeps every entry when room is reserved after filling", () => {
    const t = createUuidUntilTable();
    const ids = Array.from({ length: 2000 }, () => randomUUID());
    for (const id of ids) t.set(id, 7);
    t.reserve(100_000);
    expect(t.size).toBe(2000);
    for (const id of ids) expect(t.get(id)).toBe(7);
  });

  it("prunes exactly the expired entries and keeps the rest findable (same as a Map)", () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.uuid(), fc.integer({ min: 1, max: 100 })), { maxLength: 3000 }),
        fc.integer({ min: 0, max: 101 }),
        (entries, limit) => {
          const t = createUuidUntilTable();
          const model = new Map<string, number>();
          for (const [id, until] of entries) {
            t.set(id, until);
            model.set(id, Math.max(model.get(id) ?? 0, until));
          }
          const expired = [...model.values()].filter((u) => u < limit).length;
          expect(t.prune(limit)).toBe(expired);
          for (const [id, until] of model) expect(t.get(id)).toBe(until < limit ? undefined : until);
          expect(t.size).toBe(model.size - expired);
        },
      ),
      { numRuns: 60 },
    );
  });

  it("finds entries whose ids share a clock prefix (UUIDv7-like) after heavy pruning", () => {
    const t = createUuidUntilTable();
    const ids = Array.from(
      { length: 4000 },
      (_, i) => `01890000-0000-7000-8000-${i.toString(16).padStart(12, "0")}`,
    );
    ids.forEach((id, i) => {
      t.set(id, i % 2 === 0 ? 10 : 20);
    });
    expect(t.prune(15)).toBe(2000);
    for (const [i, id] of ids.entries()) expect(t.get(id)).toBe(i % 2 === 0 ? undefined : 20);
    t.clear();
    expect(t.size).toBe(0);
    expect(t.get(ids[1]!)).toBeUndefined();
  });
});
