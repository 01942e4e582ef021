import { flushSecrets } from "./run-directory.ts";

/**
 * What a scenario started, to be undone in reverse order in `afterAll` whatever happened: each step
 * runs even when an earlier one throws, and the first error is rethrown at the end.
 */
export class Teardown {
  private readonly steps: { what: string; fn: () => unknown }[] = [];

  add(what: string, fn: () => unknown): void {
    this.steps.push({ what, fn });
  }

  async run(): Promise<void> {
    let first: unknown;
    while (this.steps.length > 0) {
      const step = this.steps.pop()!;
      try {
        await step.fn();
      } catch (err) {
        console.error(`teardown: ${step.what} failed: ${(err as Error).message}`);
        first ??= err;
      }
    }
    flushSecrets();
    if (first) throw first;
  }
}

/** Prints a scenario's account: what it did and its figures, one `key: value` per line. */
export function report(title: string, lines: Record<string, string | number>): void {
  const width = Math.max(...Object.keys(lines).map((k) => k.length));
  const body = Object.entries(lines)
    .map(([k, v]) => `  ${k.padEnd(width)}  ${v}`)
    .join("\n");
  console.log(`\n[reliability] ${title}\n${body}\n`);
}

export const seconds = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

/** Runs `fn` over `items` with at most `limit` in flight. */
export async function inPool<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<void>,
) {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        await fn(items[i]!, i);
      }
    }),
  );
}
