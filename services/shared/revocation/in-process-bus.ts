import { abortError, type BusEntry, type RevocationBus, type StreamInfo } from "./revocation-bus.ts";
import { compareStreamIds, parseStreamId } from "./stream-id.ts";

export interface InProcessBusOptions {
  /** The bus's clock (epoch ms) for entry ids and trimming. Default `Date.now`. */
  now?: () => number;
}

export interface InProcessBus extends RevocationBus {
  /** Deletes a stream as if Redis had lost it; waiting reads keep waiting. True if it existed. */
  delete(stream: string): boolean;
}

interface Stream {
  /** Entries in id order; `entries[head]` is the oldest not yet trimmed. */
  entries: BusEntry[];
  head: number;
  lastMs: number;
  lastSeq: number;
}

/**
 * A {@link RevocationBus} inside one process, for `gatehouse dev` and tests without Redis: the token
 * service and a sidecar that share the object see the same streams, with Redis-stream semantics (ids,
 * exclusive ranges, blocking reads that a write wakes, MINID trimming, lost streams).
 */
export function createInProcessBus(options: InProcessBusOptions = {}): InProcessBus {
  const now = options.now ?? Date.now;
  const streams = new Map<string, Stream>();
  const waiters = new Map<string, Set<() => void>>();
  const closers = new Set<(err: Error) => void>();
  let closed = false;

  const live = () => {
    if (closed) throw new Error("bus closed");
  };
  const nextId = (s: Stream) => {
    const ms = now();
    if (ms > s.lastMs) {
      s.lastMs = ms;
      s.lastSeq = 0;
    } else s.lastSeq++;
    return `${s.lastMs}-${s.lastSeq}`;
  };
  /** Index of the first entry with id > afterId. */
  const after = (s: Stream, afterId: string) => {
    let lo = s.head;
    let hi = s.entries.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (compareStreamIds(s.entries[mid]!.id, afterId) <= 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
  const slice = (stream: string, afterId: string, count: number): BusEntry[] => {
    const s = streams.get(stream);
    if (!s) return [];
    const from = after(s, afterId);
    return s.entries.slice(from, from + count);
  };
  const listen = (stream: string, fn: () => void) => {
    const set = waiters.get(stream);
    if (set) set.add(fn);
    else waiters.set(stream, new Set([fn]));
  };
  const wake = (stream: string) => {
    const set = waiters.get(stream);
    if (!set) return;
    waiters.delete(stream);
    for (const w of set) w();
  };

  return {
    async append(stream, entries, opts = {}) {
      live();
      let s = streams.get(stream);
      if (opts.ifIntactSince !== undefined) {
        if (!s || compareStreamIds(`${s.lastMs}-${s.lastSeq}`, opts.ifIntactSince) < 0) return null;
      }
      if (entries.length === 0) return [];
      if (!s) {
        s = { entries: [], head: 0, lastMs: 0, lastSeq: 0 };
        streams.set(stream, s);
      }
      const ids: string[] = [];
      for (const fields of entries) {
        const id = nextId(s);
        s.entries.push({ id, fields: [...fields] });
        ids.push(id);
      }
      wake(stream);
      return ids;
    },

    async range(stream, afterId, count) {
      live();
      return slice(stream, afterId, count);
    },

    read(stream, afterId, { blockMs, count, signal }) {
      return new Promise<BusEntry[]>((resolve, reject) => {
        if (closed) return reject(new Error("bus closed"));
        if (signal?.aborted) return reject(abortError());
        const ready = slice(stream, afterId, count);
        if (ready.length > 0) return resolve(ready);
        const finish = (fn: () => void) => {
          clearTimeout(timer);
          signal?.removeEventListener("abort", onAbort);
          waiters.get(stream)?.delete(onWrite);
          closers.delete(onClose);
          fn();
        };
        const onWrite = () => {
          const got = slice(stream, afterId, count);
          if (got.length > 0) finish(() => resolve(got));
          else listen(stream, onWrite);
        };
        const onAbort = () => finish(() => reject(abortError()));
        const onClose = (err: Error) => finish(() => reject(err));
        const timer = setTimeout(() => finish(() => resolve([])), blockMs);
        signal?.addEventListener("abort", onAbort, { once: true });
        closers.add(onClose);
        listen(stream, onWrite);
      });
    },

    async info(stream): Promise<StreamInfo | null> {
      live();
      const s = streams.get(stream);
      return s ? { lastGeneratedId: `${s.lastMs}-${s.lastSeq}`, length: s.entries.length - s.head } : null;
    },

    async trim(stream, maxAgeMs) {
      live();
      const s = streams.get(stream);
      if (!s) return 0;
      const minMs = now() - maxAgeMs;
      let i = s.head;
      while (i < s.entries.length && parseStreamId(s.entries[i]!.id)!.ms < minMs) i++;
      const removed = i - s.head;
      s.head = i;
      if (s.head > 1024 && s.head * 2 > s.entries.length) {
        s.entries = s.entries.slice(s.head);
        s.head = 0;
      }
      return removed;
    },

    delete(stream) {
      return streams.delete(stream);
    },

    async close() {
      if (closed) return;
      closed = true;
      const err = new Error("bus closed");
      for (const c of [...closers]) c(err);
      waiters.clear();
    },
  };
}
