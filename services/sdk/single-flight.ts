/**
 * At most one call in flight per key: callers that ask while one runs get its promise, so they share
 * its result or its error. The key is dropped when the call settles; the next caller starts anew.
 */
export interface SingleFlight<T> {
  run(key: string, start: () => Promise<T>): Promise<T>;
  /** Keys with a call in flight. */
  readonly size: number;
}

export function createSingleFlight<T>(): SingleFlight<T> {
  const inFlight = new Map<string, Promise<T>>();
  return {
    run(key, start) {
      const running = inFlight.get(key);
      if (running !== undefined) return running;
      const call = start().finally(() => inFlight.delete(key));
      inFlight.set(key, call);
      return call;
    },
    get size() {
      return inFlight.size;
    },
  };
}
