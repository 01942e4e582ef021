import { describe, expect, it } from "vitest";
import { createGroupCommit } from "../../services/token/store/group-commit.ts";

/**
 * The grouping policy alone, over statements that record what they were sent and finish when told
 * (the batchers' tests run the same policy on real Postgres).
 */
function recordingStatements() {
  const sent: string[][] = [];
  const finishers: (() => void)[] = [];
  const statement = (items: string[]) =>
    new Promise<string[]>((resolve) => {
      sent.push(items);
      finishers.push(() => resolve(items.map((i) => `done:${i}`)));
    });
  return {
    sent,
    /** Finishes the oldest statement still running. */
    finishOne: () => finishers.shift()!(),
    statements: {
      one: (item: string) => statement([item]).then(([r]) => r!),
      many: (items: string[]) => statement(items),
    },
  };
}

const settle = () => new Promise((resolve) => setImmediate(resolve));

describe("group commit", () => {
  it("by default runs one statement at a time: what arrives meanwhile goes as one group after it", async () => {
    const s = recordingStatements();
    const submit = createGroupCommit(s.statements);
    const first = submit("a");
    const rest = ["b", "c", "d"].map(submit);
    await settle();
    expect(s.sent).toEqual([["a"]]);
    s.finishOne();
    expect(await first).toBe("done:a");
    await settle();
    expect(s.sent).toEqual([["a"], ["b", "c", "d"]]);
    s.finishOne();
    expect(await Promise.all(rest)).toEqual(["done:b", "done:c", "done:d"]);
  });

  it("with maxInFlight 2, a second item starts at once and only the third waits", async () => {
    const s = recordingStatements();
    const submit = createGroupCommit(s.statements, { maxInFlight: 2 });
    const calls = ["a", "b", "c", "d"].map(submit);
    await settle();
    expect(s.sent).toEqual([["a"], ["b"]]);
    s.finishOne();
    await settle();
    expect(s.sent).toEqual([["a"], ["b"], ["c", "d"]]);
    s.finishOne();
    s.finishOne();
    expect(await Promise.all(calls)).toEqual(["done:a", "done:b", "done:c", "done:d"]);
  });

  it("never puts two items with one key in a group: the later waits for the next one", async () => {
    const s = recordingStatements();
    const submit = createGroupCommit({ ...s.statements, key: (item: string) => item.slice(0, 1) });
    const calls = ["x0", "a1", "b1", "a2"].map(submit);
    await settle();
    s.finishOne();
    await settle();
    expect(s.sent).toEqual([["x0"], ["a1", "b1"]]);
    s.finishOne();
    await settle();
    expect(s.sent).toEqual([["x0"], ["a1", "b1"], ["a2"]]);
    s.finishOne();
    expect(await Promise.all(calls)).toEqual(["done:x0", "done:a1", "done:b1", "done:a2"]);
  });
});
