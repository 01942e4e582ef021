import type { Logger } from "../../shared/logging/index.ts";
import type { Registry } from "../../shared/metrics/index.ts";
import { backoffDelay, sleep } from "../../shared/revocation/backoff.ts";
import type { RevocationBus } from "../../shared/revocation/revocation-bus.ts";
import { outboxBacklog } from "../sql/outbox-backlog.ts";
import { pruneOutbox } from "../sql/prune-outbox.ts";
import { pruneRevokedTokens } from "../sql/prune-revoked-tokens.ts";
import type { OutboxDb } from "./outbox-db.ts";
import { createPublishWaiters } from "./publish-waiters.ts";
import { createRelayMetrics, type PublishPath } from "./relay-metrics.ts";
import { type RelayPassContext, type RelayPassOutcome, RelayStageError, relayPass } from "./relay-pass.ts";

export interface OutboxRelayOptions {
  db: OutboxDb;
  bus: RevocationBus;
  /** Stream key, e.g. `gatehouse:revocations`. */
  stream: string;
  /** Longest access-token lifetime: how long an event matters, and so how much the stream keeps. */
  maxAccessTokenTtlMs: number;
  logger: Logger;
  metrics?: Registry | undefined;
  /** Epoch ms; the outbox's times are compared with it. Default `Date.now`. */
  now?: () => number;
  /** Longest wait of {@link OutboxRelay.publish}. Default 500 ms. */
  publishTimeoutMs?: number;
  /** Rows per pass (and per republish page). Default 500. */
  batchSize?: number;
  /** Background pass interval while all is well; it also notices a lost stream. Default 1 s. */
  pollIntervalMs?: number;
  /** Background retry delay after a failure: doubles from min to max, with jitter. Default 100 ms, 5 s. */
  retryMinMs?: number;
  retryMaxMs?: number;
  /** How often a background pass also trims the stream. Default 10 s. */
  trimIntervalMs?: number;
  /** How often outbox rows and revoked jtis that stopped mattering are deleted. Default 60 s; 0 disables. */
  pruneIntervalMs?: number;
  /**
   * Kept past the point an event stops mattering, in the stream and in the outbox: covers clock skew
   * between token service, Redis and sidecars, and tokens accepted within the verifier's skew after
   * `exp`. Default 300 s.
   */
  graceMs?: number;
}

export interface OutboxRelay {
  /**
   * Revoke's fast path: publishes now (with every row queued before them, in order) and resolves true
   * once the events are in the stream; false when the bus or database fails or the wait runs out, in
   * which case the rows stay queued for the background relay. Never rejects.
   */
  publish(eventIds: readonly string[]): Promise<boolean>;
  /** One relay pass now (serialized with the others in this process). */
  flush(): Promise<RelayPassOutcome>;
  /** Deletes outbox rows and revoked jtis that no longer matter; returns how many. */
  prune(): Promise<{ outbox: number; revokedTokens: number }>;
  /** Starts the background relay and the prune timer. */
  start(): void;
  /** Stops them, waits for a pass in flight, and answers pending publishes false. Idempotent. */
  stop(): Promise<void>;
}

const PRUNE_LIMIT = 5000;

/**
 * The outbox relay of one token service replica. Every pass (fast path or background) runs under the
 * relay's Postgres advisory lock, so replicas publish one at a time and the stream keeps outbox order;
 * within this process passes are serialized too, so one replica holds at most one connection for it.
 */
export function createOutboxRelay(options: OutboxRelayOptions): OutboxRelay {
  const now = options.now ?? Date.now;
  const log = options.logger;
  const publishTimeoutMs = options.publishTimeoutMs ?? 500;
  const pollIntervalMs = options.pollIntervalMs ?? 1000;
  const retryMinMs = options.retryMinMs ?? 100;
  const retryMaxMs = options.retryMaxMs ?? 5000;
  const trimIntervalMs = options.trimIntervalMs ?? 10_000;
  const pruneIntervalMs = options.pruneIntervalMs ?? 60_000;
  const graceMs = options.graceMs ?? 300_000;
  const ctx: RelayPassContext = {
    db: options.db,
    bus: options.bus,
    stream: options.stream,
    batchSize: options.batchSize ?? 500,
    log,
  };
  const metrics = createRelayMetrics(
    options.metrics,
    async () => (await options.db.query(outboxBacklog, []))[0] ?? { backlog: 0, oldest: null },
    now,
  );
  const waiters = createPublishWaiters(() => metrics.failed("timeout"));
  const stopping = new AbortController();
  let chain: Promise<unknown> = Promise.resolve();
  let pumping = false;
  let background: Promise<void> | undefined;
  let pruneTimer: NodeJS.Timeout | undefined;
  let lastTrim = 0;

  /** One pass, after any pass already running in this process. */
  const pass = (path: PublishPath, trim = false): Promise<RelayPassOutcome> => {
    const run = chain.then(async () => {
      const round = waiters.beginPass();
      try {
        const outcome = await relayPass(ctx, {
          now: now(),
          trimMaxAgeMs: trim ? options.maxAccessTokenTtlMs + graceMs : undefined,
          onAppended(ids, republished) {
            metrics.published(republished ? "republish" : path, ids.length);
            waiters.appended(ids);
          },
        });
        waiters.endPass(round, outcome.locked && !outcome.more ? "complete" : "partial");
        if (outcome.reset) metrics.reset();
        return outcome;
      } catch (err) {
        waiters.endPass(round, "failed");
        metrics.failed(err instanceof RelayStageError ? err.stage : "database");
        throw err;
      }
    });
    chain = run.catch(() => {});
    return run;
  };

  /** Runs passes while publishes wait; another replica holding the lock means a short retry. */
  const pump = async () => {
    if (pumping) return;
    pumping = true;
    try {
      for (let misses = 0; waiters.size > 0 && !stopping.signal.aborted; ) {
        const outcome = await pass("publish").catch(() => undefined);
        if (outcome && !outcome.locked) await sleep(Math.min(2 ** misses++, 20), stopping.signal);
        else misses = 0;
      }
    } finally {
      pumping = false;
    }
  };

  const loop = async () => {
    let failures = 0;
    while (!stopping.signal.aborted) {
      let delay = pollIntervalMs;
      try {
        const trim = now() - lastTrim >= trimIntervalMs;
        const outcome = await pass("relay", trim);
        if (trim && outcome.locked) lastTrim = now();
        if (failures > 0) log.info({ after: failures }, "revocation relay recovered");
        failures = 0;
        if (outcome.locked && outcome.more) delay = 0;
      } catch (err) {
        failures++;
        if (failures === 1 || failures % 20 === 0) {
          log.warn({ err: (err as Error).message, failures }, "revocation relay pass failed; retrying");
        }
        delay = backoffDelay(failures, retryMinMs, retryMaxMs);
      }
      if (delay > 0) await sleep(delay, stopping.signal);
    }
  };

  const prune = async () => {
    const before = new Date(now() - graceMs);
    let outbox = 0;
    let revokedTokens = 0;
    for (let i = 0; i < 100; i++) {
      const n = (await options.db.query(pruneOutbox, [before, PRUNE_LIMIT]))[0]?.n ?? 0;
      outbox += n;
      if (n < PRUNE_LIMIT) break;
    }
    for (let i = 0; i < 100; i++) {
      const n = (await options.db.query(pruneRevokedTokens, [before, PRUNE_LIMIT]))[0]?.n ?? 0;
      revokedTokens += n;
      if (n < PRUNE_LIMIT) break;
    }
    metrics.pruned("revocation_outbox", outbox);
    metrics.pruned("revoked_access_tokens", revokedTokens);
    if (outbox + revokedTokens > 0) log.debug({ outbox, revokedTokens }, "pruned revocation rows");
    return { outbox, revokedTokens };
  };

  return {
    async publish(eventIds) {
      if (eventIds.length === 0) return true;
      if (stopping.signal.aborted) return false;
      const done = waiters.wait(eventIds, publishTimeoutMs);
      void pump();
      return done;
    },
    flush: () => pass("relay"),
    prune,
    start() {
      if (background || stopping.signal.aborted) return;
      background = loop();
      if (pruneIntervalMs > 0) {
        pruneTimer = setInterval(() => {
          prune().catch((err: Error) => log.warn({ err: err.message }, "pruning revocation rows failed"));
        }, pruneIntervalMs);
        pruneTimer.unref();
      }
    },
    async stop() {
      stopping.abort();
      if (pruneTimer) clearInterval(pruneTimer);
      waiters.cancelAll();
      await background;
      await chain;
    },
  };
}
