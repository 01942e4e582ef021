export interface GroupCommitOptions {
  /** Most items in one statement. Default 64. */
  maxBatch?: number;
  /**
   * Statements in flight at once; further items wait and go together. Default 1: against 2, the
   * service used 0.92–0.93× the CPU per Refresh and per Issue, paired on one 2-core machine, with
   * larger groups and fewer round trips (Postgres' CPU per Refresh 61–64 → 47–48 µs), and served
   * 2–4 % more calls at the same p99. The store alone, no RPC, peaks ~8 % lower with one.
   */
  maxInFlight?: number;
}

export interface GroupCommitStatements<Item, Result> {
  /** The one-item statement: what an item runs alone, and what each item of a refused group retries. */
  one(item: Item): Promise<Result>;
  /** The group statement: one result per item, in the items' order. */
  many(items: Item[]): Promise<Result[]>;
  /**
   * Items with the same key never share a group: a later one waits for a later group, so it runs
   * after the earlier one committed, as it would have alone.
   */
  key?(item: Item): string;
}

/**
 * Group commit: an item that arrives while `maxInFlight` statements are already running waits for
 * one of them and then goes with everything else that waited, as one multi-row statement. An idle
 * service sends each item at once, alone, through the one-item statement, so grouping adds no
 * latency until there is a queue.
 *
 * A group fails as a whole. When the cause is in the data (a class 22 or 23 SQLSTATE), its items are
 * retried one by one so that only the guilty item fails, with the error it would have had alone. Any
 * other failure (connection lost, timeout, deadlock) reaches every caller of the group, as it would
 * have reached each alone: whether it committed is as unknown as it is for a single statement.
 */
export function createGroupCommit<Item, Result>(
  statements: GroupCommitStatements<Item, Result>,
  options: GroupCommitOptions = {},
): (item: Item) => Promise<Result> {
  const maxBatch = options.maxBatch ?? 64;
  const maxInFlight = options.maxInFlight ?? 1;
  if (!(maxBatch >= 1) || !(maxInFlight >= 1))
    throw new TypeError("maxBatch and maxInFlight must be at least 1");
  const { one, many, key } = statements;
  let waiting: Pending<Item, Result>[] = [];
  let inFlight = 0;

  const alone = (p: Pending<Item, Result>) => one(p.item).then(p.resolve, p.reject);

  const together = async (group: Pending<Item, Result>[]) => {
    try {
      const results = await many(group.map((p) => p.item));
      for (const [i, p] of group.entries()) p.resolve(results[i] as Result);
    } catch (err) {
      if (!isDataError(err)) {
        for (const p of group) p.reject(err);
        return;
      }
      await Promise.all(group.map(alone));
    }
  };

  const takeGroup = (): Pending<Item, Result>[] => {
    if (key === undefined) return waiting.splice(0, maxBatch);
    const group: Pending<Item, Result>[] = [];
    const later: Pending<Item, Result>[] = [];
    const taken = new Set<string>();
    for (const p of waiting) {
      const k = key(p.item);
      if (group.length < maxBatch && !taken.has(k)) {
        taken.add(k);
        group.push(p);
      } else later.push(p);
    }
    waiting = later;
    return group;
  };

  const pump = () => {
    while (inFlight < maxInFlight && waiting.length > 0) {
      const group = takeGroup();
      inFlight++;
      const sent = group.length === 1 ? alone(group[0]!) : together(group);
      void sent.finally(() => {
        inFlight--;
        pump();
      });
    }
  };

  return (item) =>
    new Promise<Result>((resolve, reject) => {
      waiting.push({ item, resolve, reject });
      pump();
    });
}

interface Pending<Item, Result> {
  item: Item;
  resolve(result: Result): void;
  reject(err: unknown): void;
}

/** Postgres refused the data (class 22: data exception; class 23: integrity constraint), not the connection. */
function isDataError(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" && (code.startsWith("22") || code.startsWith("23"));
}
