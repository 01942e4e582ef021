import type { Registry } from "../../shared/metrics/index.ts";
import { backoffDelay, sleep } from "../../shared/revocation/backoff.ts";
import type { BusEntry, RevocationBus } from "../../shared/revocation/revocation-bus.ts";
import { decodeRevocationEntry } from "../../shared/revocation/revocation-entry.ts";
import type { RevocationEvent } from "../../shared/revocation/revocation-events.ts";
import { compareStreamIds, STREAM_START } from "../../shared/revocation/stream-id.ts";
import type { MemoryRevocationState } from "../revocation-state/index.ts";
import { createFollowerMetrics } from "./follower-metrics.ts";

/** The part of a pino logger the follower uses. */
export interface FollowerLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

/**
 * Entries per bootstrap page and per read, unless set. At 10,000 a page lived through several
 * young-generation collections while it arrived and was applied, and a 1M-entry bootstrap took
 * 3.2 s instead of 1.9 s. Smaller pages also hold Redis for less time per XRANGE (~0.4 ms, not ~2.3).
 */
export const DEFAULT_PAGE_SIZE = 2000;

export interface StreamFollowerOptions {
  bus: RevocationBus;
  /** Stream key, e.g. `gatehouse:revocations`. */
  stream: string;
  state: Pick<MemoryRevocationState, "apply" | "markFresh" | "prune" | "size" | "freshAt"> &
    Partial<Pick<MemoryRevocationState, "reserve">>;
  logger: FollowerLogger;
  metrics?: Registry | undefined;
  /** Entries per bootstrap page and per read. Default {@link DEFAULT_PAGE_SIZE}. */
  pageSize?: number;
  /** Longest blocking read; each answer, empty or not, confirms the state current. Default 5 s. */
  blockMs?: number;
  /** Reconnect delay after a failure: doubles from min to max, with jitter. Default 100 ms and 5 s. */
  retryMinMs?: number;
  retryMaxMs?: number;
  /** How often the state drops entries that stopped mattering. Default 60 s; 0 disables. */
  pruneIntervalMs?: number;
  /** Epoch ms. Default `Date.now`. */
  now?: () => number;
  /** Called after each event is applied (`live`: arrived by following, not by bootstrap). */
  onApplied?: (event: RevocationEvent, live: boolean) => void;
}

export interface StreamFollower {
  /** Starts following; resolves after the first bootstrap (retrying until Redis answers), rejects if stopped first. */
  start(): Promise<void>;
  /** Stops reading (a blocking read is aborted) and the prune timer. Idempotent. */
  stop(): Promise<void>;
  /** The id of the last entry read (`0-0` before any). */
  readonly lastId: string;
  /** True once the state has been bootstrapped, until stopped. Staleness is the state's `isStale`. */
  ready(): boolean;
}

/**
 * Keeps a sidecar's revocation state in step with the stream: bootstrap reads the whole window in
 * pages (XRANGE), then blocking reads (XREAD) follow from the last id. A read that fails reconnects
 * with backoff and jitter. A reset stream (missing after we had read from it, or its last generated
 * id behind ours: Redis restarted empty, flushed, failed over) is noticed on every empty read and
 * after every failure, and answered with a fresh bootstrap that merges into the state without
 * clearing it: entries merge by maximum, so nothing it already knew is dropped.
 */
export function createStreamFollower(options: StreamFollowerOptions): StreamFollower {
  const { bus, stream, state, logger } = options;
  const pageSize = options.pageSize ?? DEFAULT_PAGE_SIZE;
  const blockMs = options.blockMs ?? 5000;
  const retryMinMs = options.retryMinMs ?? 100;
  const retryMaxMs = options.retryMaxMs ?? 5000;
  const pruneIntervalMs = options.pruneIntervalMs ?? 60_000;
  const now = options.now ?? Date.now;
  const metrics = createFollowerMetrics(options.metrics, state);
  if (!(pageSize > 0) || !(blockMs > 0)) throw new TypeError("pageSize and blockMs must be positive");

  const stopping = new AbortController();
  let lastId = STREAM_START;
  let bootstrapped = false;
  let running: Promise<void> | undefined;
  let pruneTimer: NodeJS.Timeout | undefined;
  let firstBootstrap: { resolve(): void; reject(err: Error): void } | undefined;
  const started = new Promise<void>((resolve, reject) => {
    firstBootstrap = { resolve, reject };
  });
  started.catch(() => {});

  const apply = (entries: readonly BusEntry[], live: boolean) => {
    let applied = 0;
    const at = now();
    for (const entry of entries) {
      const event = decodeRevocationEntry(entry.fields);
      if (event === null || !state.apply(event)) continue;
      applied++;
      if (live) metrics.lag((at - event.at) / 1000);
      options.onApplied?.(event, live);
    }
    metrics.applied(live ? "follow" : "bootstrap", applied);
    metrics.skipped(entries.length - applied);
    const last = entries.at(-1);
    if (last) lastId = last.id;
  };

  const bootstrap = async () => {
    const t0 = performance.now();
    const info = await bus.info(stream);
    if (info) state.reserve?.(state.size + info.length);
    let read = 0;
    // Ask for the next page before applying this one, so Redis assembles it while we decode.
    let next = bus.range(stream, STREAM_START, pageSize);
    for (;;) {
      const page = await next;
      const full = page.length === pageSize;
      if (full) next = bus.range(stream, page.at(-1)!.id, pageSize);
      apply(page, false);
      read += page.length;
      if (!full) break;
    }
    if (read === 0) lastId = info?.lastGeneratedId ?? STREAM_START;
    state.markFresh(now());
    const seconds = (performance.now() - t0) / 1000;
    metrics.bootstrapped(seconds);
    logger.info(
      { stream, entries: read, size: state.size, ms: Math.round(seconds * 1000) },
      "revocation state bootstrapped",
    );
    if (!bootstrapped) {
      bootstrapped = true;
      firstBootstrap?.resolve();
    }
  };

  /** The stream no longer continues what we read: gone after we read from it, or behind us. */
  const streamWasReset = async () => {
    const info = await bus.info(stream);
    if (info === null) return lastId !== STREAM_START;
    return compareStreamIds(info.lastGeneratedId, lastId) < 0;
  };

  const run = async () => {
    let failures = 0;
    let needBootstrap = true;
    let needCheck = false;
    while (!stopping.signal.aborted) {
      try {
        if (!needBootstrap && needCheck && (await streamWasReset())) needBootstrap = true;
        needCheck = false;
        if (needBootstrap) {
          if (bootstrapped) {
            metrics.reset();
            logger.warn(
              { stream, lastId },
              "revocation stream was reset; bootstrapping again, keeping known entries",
            );
          }
          await bootstrap();
          needBootstrap = false;
        }
        const entries = await bus.read(stream, lastId, { blockMs, count: pageSize, signal: stopping.signal });
        state.markFresh(now());
        if (entries.length > 0) apply(entries, true);
        else needCheck = true;
        if (failures > 0) logger.info({ stream, after: failures }, "revocation stream reconnected");
        failures = 0;
      } catch (err) {
        if (stopping.signal.aborted) break;
        failures++;
        needCheck = true;
        metrics.error();
        if (failures === 1 || failures % 20 === 0) {
          logger.warn(
            { stream, err: (err as Error).message, failures },
            "revocation stream read failed; retrying",
          );
        }
        await sleep(backoffDelay(failures, retryMinMs, retryMaxMs), stopping.signal);
      }
    }
  };

  return {
    start() {
      if (!running && !stopping.signal.aborted) {
        running = run();
        if (pruneIntervalMs > 0) {
          pruneTimer = setInterval(() => state.prune(Math.floor(now() / 1000)), pruneIntervalMs);
          pruneTimer.unref();
        }
      }
      return started;
    },
    async stop() {
      stopping.abort();
      if (pruneTimer) clearInterval(pruneTimer);
      if (!bootstrapped)
        firstBootstrap?.reject(new Error("revocation follower stopped before its bootstrap"));
      await running;
    },
    get lastId() {
      return lastId;
    },
    ready: () => bootstrapped && !stopping.signal.aborted,
  };
}
