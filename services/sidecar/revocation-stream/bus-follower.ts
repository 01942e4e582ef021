import type { Registry } from "../../shared/metrics/index.ts";
import type { RevocationBus } from "../../shared/revocation/revocation-bus.ts";
import type { RevocationEvent } from "../../shared/revocation/revocation-events.ts";
import { createMemoryRevocationState, type MemoryRevocationState } from "../revocation-state/index.ts";
import { createStreamFollower, type FollowerLogger, type StreamFollower } from "./stream-follower.ts";

export interface BusFollowerOptions {
  /**
   * Any {@link RevocationBus}: the token service's in-process bus when both run in one process
   * (`gatehouse dev`), or a Redis bus.
   */
  bus: RevocationBus;
  /** Stream key, the same the token service's relay publishes to (`GATEHOUSE_REVOCATION_STREAM`). */
  stream: string;
  /** How long the state stays trusted without a confirming read (`GATEHOUSE_REVOCATION_STALENESS`). */
  stalenessBoundMs: number;
  logger: FollowerLogger;
  metrics?: Registry | undefined;
  /** Longest blocking read; default the stream follower's (5 s). */
  blockMs?: number;
  /** Called after each event is applied (`live`: arrived by following, not by bootstrap). */
  onApplied?: (event: RevocationEvent, live: boolean) => void;
}

/** What `startSidecar` takes to check requests against a followed bus. */
interface BusFollowerSidecarOptions {
  revocation: MemoryRevocationState;
  onReady: Promise<void>;
  readiness: () => readonly string[];
}

export interface BusFollower {
  /** The state the follower feeds; hand it to the sidecar's verifier. */
  readonly state: MemoryRevocationState;
  readonly follower: StreamFollower;
  /**
   * Starts following and returns the sidecar options that wire it in: the state, readiness that
   * waits for the first bootstrap, and a readiness problem until then. Call once.
   */
  sidecarOptions(): BusFollowerSidecarOptions;
  /** Stops following (the bus is the caller's to close). Idempotent. */
  stop(): Promise<void>;
}

/**
 * A sidecar's revocation state kept current from a bus. The in-process bus keeps the Redis-stream
 * contract (ids, blocking reads, trimming, loss), so one follower — bootstrap, then blocking reads,
 * re-bootstrap on a reset — serves both: a dev sidecar in the token service's process sees the same
 * events, in the same order, with the same staleness rules as a deployed one.
 *
 * @example
 * const bus = createInProcessBus();
 * const service = await startTokenService({ config, database, logger, bus });
 * const revocations = createBusFollower({ bus, stream: config.revocationStream, stalenessBoundMs: 30_000, logger });
 * const sidecar = await startSidecar({ settings, logger, ...revocations.sidecarOptions() });
 */
export function createBusFollower(options: BusFollowerOptions): BusFollower {
  const state = createMemoryRevocationState({ stalenessBoundMs: options.stalenessBoundMs });
  const follower = createStreamFollower({
    bus: options.bus,
    stream: options.stream,
    state,
    logger: options.logger,
    metrics: options.metrics,
    ...(options.blockMs === undefined ? {} : { blockMs: options.blockMs }),
    ...(options.onApplied === undefined ? {} : { onApplied: options.onApplied }),
  });
  return {
    state,
    follower,
    sidecarOptions: () => ({
      revocation: state,
      onReady: follower.start(),
      readiness: () => (follower.ready() ? [] : ["revocation stream not bootstrapped yet"]),
    }),
    stop: () => follower.stop(),
  };
}
