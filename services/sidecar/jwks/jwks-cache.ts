import type { KeyObject } from "node:crypto";
import { GatehouseError } from "../../shared/errors/gatehouse-error.ts";
import type { KeyResolver } from "../verifier/create-verifier.ts";
import { importJwks, type VerificationKey } from "./jwk-import.ts";
import { httpJwksSource, type JwksFetchResult, type JwksSource } from "./jwks-source.ts";
import type { VerifyAlgorithm } from "./key-algorithm.ts";

/** The part of a pino logger the cache uses. */
export interface JwksLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface JwksCacheOptions {
  /** The JWKS URL (`…/.well-known/jwks.json`). Give either this or `source`. */
  url?: string | URL;
  /** Any other way to fetch the set, e.g. the token service's gRPC `GetJwks`. */
  source?: JwksSource;
  /** For `url`: the fetch implementation. Default `globalThis.fetch`. */
  fetch?: typeof globalThis.fetch;
  /** Least time between fetches an unknown kid may trigger. Default 30 s. */
  cooldownMs?: number;
  /** Age after which the set counts as stale (still served; see {@link JwksCache.isStale}). Default 24 h. */
  maxStaleMs?: number;
  /** One fetch may take this long. Default 2 s. */
  timeoutMs?: number;
  /** How long a request with an unknown kid waits for the refetch it triggered or joined. Default 1 s. */
  unknownKidWaitMs?: number;
  /** Bounds of the background refresh interval (80% of `max-age`). Default 5 s and 1 h. */
  minRefreshMs?: number;
  maxRefreshMs?: number;
  /** Refresh interval when the source sends no `max-age`. Default 5 min. */
  defaultRefreshMs?: number;
  /** Retry delay after a failed fetch, doubling up to `maxRetryMs`. Default 1 s and 30 s. */
  minRetryMs?: number;
  maxRetryMs?: number;
  /** Epoch ms. Default `Date.now`. Used for ages and the cooldown; timers run on real time. */
  now?: () => number;
  logger?: JwksLogger;
}

export interface JwksStatus {
  /** A set has been loaded at least once. */
  readonly ready: boolean;
  readonly stale: boolean;
  readonly keys: number;
  readonly ageMs: number;
  /** Fetches started so far, for metrics. */
  readonly fetches: number;
  readonly lastError: string | undefined;
}

export interface JwksCache {
  /** Resolves once the first set is loaded; fetch failures keep retrying in the background. */
  ready(): Promise<void>;
  /**
   * The key for a kid, synchronously. Unknown kid → `unknown_key` (and a background refetch if the
   * cooldown allows); known kid for another algorithm → `unsupported_algorithm`.
   */
  resolve(kid: string, alg: VerifyAlgorithm): KeyObject;
  /** For `createVerifier`: like `resolve`, but on an unknown kid waits briefly for the refetch. */
  readonly keyResolver: KeyResolver;
  /** Fetches now (or joins the fetch under way); rejects when it fails, keeping the current set. */
  refreshNow(): Promise<void>;
  /** Time since the set was last confirmed (200 or 304); Infinity before the first load. */
  ageMs(): number;
  /** Older than `maxStaleMs`: for readiness and metrics. The keys are still served. */
  isStale(): boolean;
  status(): JwksStatus;
  keys(): { kid: string; alg: VerifyAlgorithm }[];
  stop(): void;
}

const noop = () => {};
const silent: JwksLogger = { info: noop, warn: noop, error: noop };

/**
 * The sidecar's JWKS: fetched at start, refreshed in the background at 80% of `Cache-Control:
 * max-age` (within 5 s..1 h) with `If-None-Match`, refetched when an unknown kid shows up — at most
 * once per cooldown however many requests ask, all of them sharing one fetch. A failed fetch keeps
 * the last good set. Past `maxStaleMs` the set is still served but flagged stale: refusing every
 * token because the token service is down would turn its outage into everyone's, and a compromised
 * key is cut off by the `key_revoked` revocation event, which does not depend on the JWKS.
 *
 * @example
 * const jwks = createJwksCache({ url: "http://token:7480/.well-known/jwks.json" });
 * await jwks.ready();
 * const verifier = createVerifier({ issuer, resolveKey: jwks.keyResolver, revocation });
 */
export function createJwksCache(options: JwksCacheOptions): JwksCache {
  if ((options.url === undefined) === (options.source === undefined)) {
    throw new TypeError("give exactly one of url and source");
  }
  const source =
    options.source ??
    httpJwksSource(options.url!, options.fetch === undefined ? {} : { fetch: options.fetch });
  const cooldownMs = options.cooldownMs ?? 30_000;
  const maxStaleMs = options.maxStaleMs ?? 86_400_000;
  const timeoutMs = options.timeoutMs ?? 2_000;
  const unknownKidWaitMs = options.unknownKidWaitMs ?? 1_000;
  const minRefreshMs = options.minRefreshMs ?? 5_000;
  const maxRefreshMs = options.maxRefreshMs ?? 3_600_000;
  const defaultRefreshMs = options.defaultRefreshMs ?? 300_000;
  const minRetryMs = options.minRetryMs ?? 1_000;
  const maxRetryMs = options.maxRetryMs ?? 30_000;
  const now = options.now ?? Date.now;
  const log = options.logger ?? silent;

  let keys: ReadonlyMap<string, VerificationKey> = new Map();
  let etag: string | undefined;
  let loadedAt: number | undefined;
  let lastFetchAt = Number.NEGATIVE_INFINITY;
  let inFlight: Promise<void> | undefined;
  let controller: AbortController | undefined;
  let timer: NodeJS.Timeout | undefined;
  let failures = 0;
  let fetches = 0;
  let lastError: string | undefined;
  let stopped = false;
  let markReady: () => void = noop;
  let failReady: (err: Error) => void = noop;
  const readyPromise = new Promise<void>((resolve, reject) => {
    markReady = resolve;
    failReady = reject;
  });
  readyPromise.catch(noop);

  const isStale = () => ageMs() > maxStaleMs;
  function ageMs(): number {
    return loadedAt === undefined ? Number.POSITIVE_INFINITY : now() - loadedAt;
  }

  function schedule(delayMs: number): void {
    if (stopped) return;
    clearTimeout(timer);
    timer = setTimeout(() => refresh("scheduled").catch(noop), delayMs);
    timer.unref();
  }

  function refresh(reason: "start" | "scheduled" | "unknown_kid" | "manual"): Promise<void> {
    if (inFlight !== undefined) return inFlight;
    if (stopped) return Promise.reject(new Error("JWKS cache is stopped"));
    lastFetchAt = now();
    fetches++;
    clearTimeout(timer);
    // Each handler clears inFlight first, so whoever awaits this fetch and then asks for another
    // gets a new one, not this settled one.
    const settled: Promise<void> = fetchOnce()
      .then(apply)
      .then(
        (maxAgeMs) => {
          inFlight = undefined;
          failures = 0;
          lastError = undefined;
          loadedAt = now();
          schedule(Math.min(maxRefreshMs, Math.max(minRefreshMs, 0.8 * (maxAgeMs ?? defaultRefreshMs))));
          markReady();
        },
        (err: Error) => {
          inFlight = undefined;
          // Our own stop() aborted it: nothing failed.
          if (stopped) return;
          failures++;
          lastError = err.message;
          const level = isStale() ? "error" : "warn";
          // The message, not the error: a routine retry is one line, never a stack trace.
          log[level](
            { err: err.message, reason, failures, ageMs: ageMs(), keys: keys.size },
            "JWKS fetch failed; keeping the last good set",
          );
          schedule(Math.min(maxRetryMs, minRetryMs * 2 ** (failures - 1)));
          throw err;
        },
      );
    inFlight = settled;
    return settled;
  }

  async function fetchOnce(): Promise<JwksFetchResult> {
    const abort = new AbortController();
    controller = abort;
    let timeout: NodeJS.Timeout | undefined;
    const timedOut = new Promise<never>((_, reject) => {
      timeout = setTimeout(() => {
        const err = new Error(`JWKS fetch timed out after ${timeoutMs} ms`);
        abort.abort(err);
        reject(err);
      }, timeoutMs);
    });
    try {
      return await Promise.race([source({ etag, signal: abort.signal }), timedOut]);
    } finally {
      clearTimeout(timeout);
      if (controller === abort) controller = undefined;
    }
  }

  /** Installs a fetched set; returns its max-age. Throws (keeping the old set) when nothing usable came. */
  async function apply(result: JwksFetchResult): Promise<number | undefined> {
    if (result.status === "not_modified") {
      if (keys.size === 0) throw new Error("JWKS source answered not-modified before any set was loaded");
      return result.maxAgeMs;
    }
    const imported = await importJwks(result.document);
    for (const skip of imported.skipped) log.warn(skip, "JWKS key skipped");
    if (imported.keys.size === 0) throw new Error("JWKS has no usable key");
    const added = [...imported.keys.keys()].filter((kid) => !keys.has(kid));
    const removed = [...keys.keys()].filter((kid) => !imported.keys.has(kid));
    if (added.length > 0 || removed.length > 0) log.info({ added, removed }, "JWKS keys changed");
    keys = imported.keys;
    etag = result.etag;
    return result.maxAgeMs;
  }

  function lookup(kid: string, alg: VerifyAlgorithm): KeyObject | undefined {
    const found = keys.get(kid);
    if (found === undefined) return undefined;
    if (found.alg !== alg) {
      throw new GatehouseError("unsupported_algorithm", `key ${kid} is a key for ${found.alg}, not ${alg}`);
    }
    return found.key;
  }

  /** The fetch to wait for on an unknown kid: the one under way, or a new one if the cooldown allows. */
  function refetchForUnknownKid(): Promise<void> | undefined {
    if (inFlight !== undefined) return inFlight;
    if (stopped || now() - lastFetchAt < cooldownMs) return undefined;
    return refresh("unknown_kid");
  }

  const unknownKey = () => new GatehouseError("unknown_key", "no key with this kid");

  function resolve(kid: string, alg: VerifyAlgorithm): KeyObject {
    const key = lookup(kid, alg);
    if (key !== undefined) return key;
    refetchForUnknownKid()?.catch(noop);
    throw unknownKey();
  }

  const keyResolver: KeyResolver = ({ kid, alg }) => {
    const key = lookup(kid, alg);
    if (key !== undefined) return key;
    const pending = refetchForUnknownKid();
    if (pending === undefined) throw unknownKey();
    return waitAtMost(pending, unknownKidWaitMs).then(() => {
      const fresh = lookup(kid, alg);
      if (fresh === undefined) throw unknownKey();
      return fresh;
    });
  };

  refresh("start").catch(noop);

  return {
    ready: () => readyPromise,
    resolve,
    keyResolver,
    refreshNow: () => refresh("manual"),
    ageMs,
    isStale,
    status: () => ({
      ready: loadedAt !== undefined,
      stale: isStale(),
      keys: keys.size,
      ageMs: ageMs(),
      fetches,
      lastError,
    }),
    keys: () => [...keys.values()].map(({ kid, alg }) => ({ kid, alg })),
    stop() {
      stopped = true;
      clearTimeout(timer);
      controller?.abort(new Error("JWKS cache stopped"));
      failReady(new Error("JWKS cache stopped before it was ready"));
    },
  };
}

/** Resolves when `promise` settles (either way) or after `ms`, whichever is first. */
function waitAtMost(promise: Promise<unknown>, ms: number): Promise<void> {
  return new Promise<void>((done) => {
    const timeout = setTimeout(done, ms);
    promise.then(
      () => {
        clearTimeout(timeout);
        done();
      },
      () => {
        clearTimeout(timeout);
        done();
      },
    );
  });
}
