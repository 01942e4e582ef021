/**
 * Revoke's wait for its own events: each waiter holds the event ids it committed and resolves true
 * as soon as every one of them is in the stream, false when a relay pass fails or the wait runs out.
 *
 * Passes are numbered as they start. A waiter registered before pass N started had its rows committed
 * before pass N read the outbox, so when pass N read *every* unpublished row (a complete pass) any id
 * of it that pass did not append was already published, by another replica: the waiter resolves true.
 */
export interface PublishWaiters {
  /** Registers a wait; resolves true when the events are out, false on failure or after `timeoutMs`. */
  wait(eventIds: readonly string[], timeoutMs: number): Promise<boolean>;
  /** A pass is about to read the outbox; returns its number. */
  beginPass(): number;
  /** These events are now in the stream. */
  appended(eventIds: readonly string[]): void;
  /** Pass `round` finished: complete (read every unpublished row), partial (more left), or failed. */
  endPass(round: number, result: "complete" | "partial" | "failed"): void;
  /** Resolves every waiter false (shutdown). */
  cancelAll(): void;
  readonly size: number;
}

interface Waiter {
  pending: Set<string>;
  registeredAt: number;
  settle(ok: boolean): void;
}

export function createPublishWaiters(onTimeout: () => void = () => {}): PublishWaiters {
  const waiters = new Set<Waiter>();
  let round = 0;
  return {
    wait(eventIds, timeoutMs) {
      return new Promise<boolean>((resolve) => {
        const waiter: Waiter = {
          pending: new Set(eventIds),
          registeredAt: round,
          settle(ok) {
            if (!waiters.delete(waiter)) return;
            clearTimeout(timer);
            resolve(ok);
          },
        };
        const timer = setTimeout(() => {
          if (waiters.has(waiter)) onTimeout();
          waiter.settle(false);
        }, timeoutMs);
        waiters.add(waiter);
        if (waiter.pending.size === 0) waiter.settle(true);
      });
    },
    beginPass: () => ++round,
    appended(eventIds) {
      if (waiters.size === 0) return;
      for (const w of waiters) {
        for (const id of eventIds) w.pending.delete(id);
        if (w.pending.size === 0) w.settle(true);
      }
    },
    endPass(passRound, result) {
      if (result === "partial") return;
      for (const w of waiters) if (w.registeredAt < passRound) w.settle(result === "complete");
    },
    cancelAll() {
      for (const w of waiters) w.settle(false);
    },
    get size() {
      return waiters.size;
    },
  };
}
