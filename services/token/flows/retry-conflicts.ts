/** SQLSTATEs that mean "the same statement may well succeed if run again": serialization, deadlock. */
const RETRYABLE = new Set(["40001", "40P01"]);

/**
 * Runs a storage call, retrying serialization failures and deadlocks a few times with a little
 * jitter, so callers never see them.
 */
export async function retryConflicts<T>(fn: () => Promise<T>, attempts = 5): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await fn();
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      if (i >= attempts || typeof code !== "string" || !RETRYABLE.has(code)) throw err;
      await new Promise((r) => setTimeout(r, Math.random() * 5 * i));
    }
  }
}
