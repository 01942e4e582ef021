/**
 * The transport between the token service's outbox relay and the sidecars: an append-only log of
 * entries with increasing ids, Redis-stream semantics. Two implementations keep the same contract:
 * Redis streams (`createRedisBus`) and an in-process log for `gatehouse dev` (`createInProcessBus`).
 *
 * Ids are `<ms>-<seq>` on the bus's own clock (see stream-id.ts); a stream that is deleted and written
 * again starts afresh, which is how a bus "loses its data" (Redis restarted empty, flushed, or failed
 * over to a replica that had not caught up). Every method rejects when the bus is unreachable; none
 * waits for it to come back.
 */
export interface BusEntry {
  /** Stream entry id, `<ms>-<seq>`. */
  readonly id: string;
  /** Flat field list, `[name, value, name, value...]`. */
  readonly fields: readonly string[];
}

export interface StreamInfo {
  /** The id the stream generated last (kept when entries are trimmed or deleted). */
  readonly lastGeneratedId: string;
  readonly length: number;
}

export interface AppendOptions {
  /**
   * Append only to a stream that still holds what the caller last saw: the stream must exist and
   * its last generated id must be at or after this id. Otherwise nothing is appended and `append`
   * resolves with null (the stream was lost or reset). Unset: append unconditionally, creating the
   * stream when missing. With no entries, this is just the check.
   */
  ifIntactSince?: string;
}

interface ReadOptions {
  /** Longest wait for an entry after `afterId`; the read then resolves with `[]`. */
  blockMs: number;
  /** Most entries one read returns. */
  count: number;
  /** Aborting ends a waiting read with an AbortError. */
  signal?: AbortSignal;
}

export interface RevocationBus {
  /** Appends entries in order with fresh ids (XADD `*`) atomically; resolves with their ids, or null (see options). */
  append(
    stream: string,
    entries: readonly (readonly string[])[],
    options?: AppendOptions,
  ): Promise<string[] | null>;
  /** Up to `count` entries with ids strictly after `afterId`, oldest first (XRANGE `(afterId + COUNT`). */
  range(stream: string, afterId: string, count: number): Promise<BusEntry[]>;
  /**
   * Entries after `afterId`, waiting up to `blockMs` for one (XREAD BLOCK). A read on a missing
   * stream waits too. Resolving (even with `[]`) means the bus answered.
   */
  read(stream: string, afterId: string, options: ReadOptions): Promise<BusEntry[]>;
  /** The stream's position, or null when it does not exist. */
  info(stream: string): Promise<StreamInfo | null>;
  /**
   * Drops entries more than `maxAgeMs` older than the bus's clock (XTRIM MINID, computed on the
   * bus's side so the token service's clock never trims what the stream's clock still needs).
   * Resolves with how many entries went.
   */
  trim(stream: string, maxAgeMs: number): Promise<number>;
  /** Ends connections and wakes waiting reads (they reject). Idempotent. */
  close(): Promise<void>;
}

/** Thrown by a read that was aborted through its signal. */
export function abortError(): Error {
  const err = new Error("bus read aborted");
  err.name = "AbortError";
  return err;
}
