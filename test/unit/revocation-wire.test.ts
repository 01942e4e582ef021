import { describe, expect, it } from "vitest";
import { createInProcessBus } from "../../services/shared/revocation/in-process-bus.ts";
import {
  decodeRevocationEntry,
  ENTRY_FIELD,
  encodeRevocationEntry,
  toRevocationEvent,
} from "../../services/shared/revocation/revocation-entry.ts";
import type { RevocationEvent } from "../../services/shared/revocation/revocation-events.ts";
import { compareStreamIds } from "../../services/shared/revocation/stream-id.ts";
import { createPublishWaiters } from "../../services/token/revocation/publish-waiters.ts";

const base = { id: "6f1c8a2e-0b7d-4c55-9a51-1d2f3e4a5b6c", at: 1_795_435_200_000, until: 1_795_438_800 };
const EVENTS: RevocationEvent[] = [
  { ...base, type: "token_revoked", jti: "j1" },
  { ...base, type: "session_revoked", sid: "s1" },
  { ...base, type: "session_version", sid: "s1", minVersion: 4 },
  { ...base, type: "subject_revoked", sub: "alice", notBefore: 1_795_435_200_000 },
  { ...base, type: "client_disabled", clientId: "web", notBefore: 1_795_435_200_000 },
  { ...base, type: "key_revoked", kid: "k1" },
];

describe("revocation stream entries", () => {
  it.each(EVENTS.map((e) => [e.type, e] as const))("%s survives encode → decode", (_type, event) => {
    const fields = encodeRevocationEntry(event);
    expect(fields[0]).toBe(ENTRY_FIELD);
    expect(decodeRevocationEntry(fields)).toEqual(event);
  });

  it.each<[string, string[]]>([
    ["no e field", ["x", JSON.stringify(EVENTS[0])]],
    ["no fields at all", []],
    ["a dangling field name", ["e"]],
    ["not JSON", ["e", "{nope"]],
    ["JSON that is not an object", ["e", "[1,2]"]],
    ["JSON null", ["e", "null"]],
    ["an unknown type", ["e", JSON.stringify({ ...base, type: "user_deleted", sub: "a" })]],
    ["a missing member", ["e", JSON.stringify({ ...base, type: "token_revoked" })]],
    ["an empty id", ["e", JSON.stringify({ ...EVENTS[0], id: "" })]],
    ["a string time", ["e", JSON.stringify({ ...EVENTS[0], at: "yesterday" })]],
    ["a fractional version", ["e", JSON.stringify({ ...EVENTS[2], minVersion: 1.5 })]],
    ["an oversized jti", ["e", JSON.stringify({ ...EVENTS[0], jti: "j".repeat(2000) })]],
  ])("skips %s without throwing", (_label, fields) => {
    expect(decodeRevocationEntry(fields)).toBeNull();
  });

  it("finds the e field among others, and keeps no extra members when building events", () => {
    expect(decodeRevocationEntry(["v", "2", "e", JSON.stringify(EVENTS[1])])).toEqual(EVENTS[1]);
    expect(toRevocationEvent({ ...EVENTS[0], secret: "x" })).toEqual(EVENTS[0]);
  });
});

describe("stream ids", () => {
  it.each<[string, string, number]>([
    ["1-0", "1-0", 0],
    ["1-1", "1-0", 1],
    ["2-0", "1-99", 1],
    ["1795435200000-0", "999999999999-5", 1],
    ["0-0", "1-0", -1],
    ["garbage", "0-0", -1],
  ])("compare(%s, %s) has the sign of %d", (a, b, sign) => {
    expect(Math.sign(compareStreamIds(a, b))).toBe(sign);
  });
});

describe("in-process bus", () => {
  it("keeps Redis stream semantics: increasing ids, exclusive ranges, the intact check, MINID trimming", async () => {
    let now = 1000;
    const bus = createInProcessBus({ now: () => now });
    expect(await bus.info("s")).toBeNull();
    expect(await bus.append("s", [], { ifIntactSince: "1-0" })).toBeNull(); // missing
    expect(
      await bus.append("s", [
        ["e", "a"],
        ["e", "b"],
      ]),
    ).toEqual(["1000-0", "1000-1"]);
    now = 999; // a clock going backwards still yields increasing ids
    expect(await bus.append("s", [["e", "c"]], { ifIntactSince: "1000-1" })).toEqual(["1000-2"]);
    expect(await bus.append("s", [["e", "d"]], { ifIntactSince: "2000-0" })).toBeNull(); // behind
    expect((await bus.range("s", "1000-0", 10)).map((e) => e.id)).toEqual(["1000-1", "1000-2"]);
    expect(await bus.range("s", "0-0", 1)).toEqual([{ id: "1000-0", fields: ["e", "a"] }]);
    now = 5000;
    await bus.append("s", [["e", "late"]]);
    expect(await bus.trim("s", 2000)).toBe(3);
    expect(await bus.info("s")).toEqual({ lastGeneratedId: "5000-0", length: 1 });
    expect(bus.delete("s")).toBe(true);
    expect(await bus.info("s")).toBeNull();
    await bus.close();
    await expect(bus.range("s", "0-0", 1)).rejects.toThrow("bus closed");
  });

  it("wakes a blocked read on append, times out empty, and aborts", async () => {
    const bus = createInProcessBus();
    const pending = bus.read("s", "0-0", { blockMs: 5000, count: 10 });
    await bus.append("s", [["e", "x"]]);
    expect((await pending).map((e) => e.fields[1])).toEqual(["x"]);
    expect(await bus.read("s", "99999999999999-0", { blockMs: 20, count: 10 })).toEqual([]);
    const ac = new AbortController();
    const aborted = bus.read("s", "99999999999999-0", { blockMs: 5000, count: 10, signal: ac.signal });
    ac.abort();
    await expect(aborted).rejects.toMatchObject({ name: "AbortError" });
    await bus.close();
  });
});

describe("publish waiters", () => {
  it("resolve when their events are appended, or when a complete pass that started later did not see them", async () => {
    const w = createPublishWaiters();
    const a = w.wait(["e1", "e2"], 1000);
    const pass1 = w.beginPass();
    w.appended(["e1"]);
    const b = w.wait(["e9"], 1000); // registered during pass 1: not covered by it
    w.endPass(pass1, "complete");
    w.appended(["e2"]);
    expect(await a).toBe(true);
    expect(w.size).toBe(1);
    const pass2 = w.beginPass();
    w.endPass(pass2, "complete"); // e9 was published by another replica
    expect(await b).toBe(true);
  });

  it("answer false when the pass fails or the wait runs out, and partial passes settle nothing", async () => {
    let timeouts = 0;
    const w = createPublishWaiters(() => timeouts++);
    const a = w.wait(["e1"], 1000);
    const pass = w.beginPass();
    w.endPass(pass, "partial");
    expect(w.size).toBe(1);
    w.endPass(w.beginPass(), "failed");
    expect(await a).toBe(false);
    expect(await w.wait(["e2"], 10)).toBe(false);
    expect(timeouts).toBe(1);
  });
});
