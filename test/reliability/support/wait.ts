import { vi } from "vitest";

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * `check`'s first result other than undefined/false, polled by vitest's `vi.waitFor`; after
 * `timeoutMs` it throws naming `what` and the last value or error `check` produced.
 */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined | false> | T | undefined | false,
  { timeoutMs = 30_000, intervalMs = 100 }: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<T> {
  let last: unknown;
  try {
    return await vi.waitFor(
      async () => {
        try {
          last = await check();
        } catch (err) {
          last = err;
        }
        if (last === undefined || last === false || last instanceof Error) throw new Error("not yet");
        return last as T;
      },
      { timeout: timeoutMs, interval: intervalMs },
    );
  } catch {
    const detail = last instanceof Error ? last.message : JSON.stringify(last);
    throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${detail})`);
  }
}

/** GET `url` with a short timeout; the status, or 0 when nothing answered. */
export async function httpStatus(url: string, timeoutMs = 2000): Promise<number> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    await res.arrayBuffer();
    return res.status;
  } catch {
    return 0;
  }
}
