import { createRedisBus } from "../shared/revocation/redis-bus.ts";
import type { RevocationBus } from "../shared/revocation/revocation-bus.ts";
import { createJwksCache } from "../sidecar/jwks/jwks-cache.ts";
import { createMemoryRevocationState } from "../sidecar/revocation-state/memory-revocation-state.ts";
import type { RevocationState } from "../sidecar/revocation-state/revocation-state.ts";
import { createStreamFollower, type StreamFollower } from "../sidecar/revocation-stream/stream-follower.ts";
import { createVerifier, type Verifier } from "../sidecar/verifier/create-verifier.ts";
import type { Identity, Requirement } from "../sidecar/verifier/identity.ts";

/** Follow the token service's revocation stream in Redis, as a deployed sidecar does. */
export interface RedisRevocationOptions {
  /** `redis://` or `rediss://` URL of the Redis the token service's relay publishes to. */
  redisUrl: string;
  /** Stream key (the token service's `GATEHOUSE_REVOCATION_STREAM`). Default `gatehouse:revocations`. */
  stream?: string;
  /** How long the state stays trusted without a confirming read. Default 30 s. */
  stalenessBoundMs?: number;
}

/** The part of a pino logger the verifier's background parts use. */
export interface VerifierLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface GatehouseVerifierOptions {
  /** Expected `iss`, compared exactly (the token service's `GATEHOUSE_ISSUER`). */
  issuer: string;
  /** Audiences a token must name one of, unless a call's requirement names its own. */
  audiences: readonly string[];
  /** The token service's JWKS, e.g. `http://gatehouse:7480/.well-known/jwks.json`. */
  jwksUrl: string | URL;
  /**
   * Where revocations come from. `"none"` must be said out loud: without the stream a revoked
   * token is accepted until it expires.
   */
  revocation: RedisRevocationOptions | "none";
  /** Tolerance for `exp`, `nbf` and `iat`. Default 30 s, at most 300 s. */
  clockSkewMs?: number;
  /** Accepted algorithms, among EdDSA, ES256, RS256. Default: all three. */
  algorithms?: readonly string[];
  /** When the revocation state is stale: reject with `revocation_state_stale` (default) or accept. */
  failOpen?: boolean;
  /** Background failures (JWKS fetch, Redis) are reported here. Default: silent. */
  logger?: VerifierLogger;
  /** Epoch ms. Default `Date.now`. */
  now?: () => number;
}

export interface GatehouseVerifier {
  /**
   * Verifies an access token; resolves with its claims or rejects with a `GatehouseError` whose
   * `code` says why (`missing_token`, `bad_signature`, `wrong_audience`, `session_revoked`, ...).
   */
  verify(token: string, requirement?: Requirement): Promise<Identity>;
  /** Resolves once the first JWKS is loaded and, with Redis, the revocation state bootstrapped. */
  ready(): Promise<void>;
  /** Stops the JWKS refresh and the stream follower and closes the Redis connection. Idempotent. */
  close(): Promise<void>;
  /** Entries in the verified-token cache (for metrics). */
  readonly cacheSize: number;
}

const silent: VerifierLogger = { info() {}, warn() {}, error() {} };

/**
 * The sidecar's verifier, in process: the same checks in the same order (signature against the
 * cached JWKS, algorithm allow-list, `typ`, issuer, times, audience, scopes, revocation), fed by the
 * same JWKS cache and revocation-stream follower. One per process; `close()` it on shutdown.
 *
 * @example
 * const verifier = createGatehouseVerifier({
 *   issuer: "https://auth.example.com",
 *   audiences: ["orders"],
 *   jwksUrl: "http://gatehouse:7480/.well-known/jwks.json",
 *   revocation: { redisUrl: "redis://redis:6379" },
 * });
 * await verifier.ready();
 * const claims = await verifier.verify(token, { scopes: { allOf: ["orders:read"] } });
 */
export function createGatehouseVerifier(options: GatehouseVerifierOptions): GatehouseVerifier {
  if (!Array.isArray(options.audiences) || options.audiences.length === 0) {
    throw new TypeError("audiences must name at least one audience");
  }
  const revocation = options.revocation;
  if (revocation !== "none" && (typeof revocation !== "object" || !revocation?.redisUrl)) {
    throw new TypeError('revocation must be { redisUrl } or "none"');
  }
  const logger = options.logger ?? silent;
  const now = options.now ?? Date.now;
  const jwks = createJwksCache({ url: options.jwksUrl, logger, now });

  let state: RevocationState = NO_REVOCATIONS;
  let bus: RevocationBus | undefined;
  let follower: StreamFollower | undefined;
  if (revocation !== "none") {
    const memory = createMemoryRevocationState({ stalenessBoundMs: revocation.stalenessBoundMs ?? 30_000 });
    bus = createRedisBus({ url: revocation.redisUrl, name: "gatehouse-sdk", logger });
    follower = createStreamFollower({
      bus,
      stream: revocation.stream ?? "gatehouse:revocations",
      state: memory,
      logger,
      now,
    });
    state = memory;
  }
  let verifier: Verifier;
  try {
    verifier = createVerifier({
      issuer: options.issuer,
      audiences: options.audiences,
      ...(options.algorithms === undefined ? {} : { algorithms: options.algorithms }),
      ...(options.clockSkewMs === undefined ? {} : { clockSkewMs: options.clockSkewMs }),
      ...(options.failOpen === undefined ? {} : { failOpen: options.failOpen }),
      resolveKey: jwks.keyResolver,
      revocation: state,
      now,
    });
  } catch (err) {
    jwks.stop();
    void bus?.close();
    throw err;
  }
  const following = follower?.start();
  following?.catch(() => {});

  let closing: Promise<void> | undefined;
  return {
    verify: (token, requirement) => verifier.verify(token, requirement),
    async ready() {
      await jwks.ready();
      await following;
    },
    close() {
      closing ??= (async () => {
        jwks.stop();
        await follower?.stop();
        await bus?.close();
      })();
      return closing;
    },
    get cacheSize() {
      return verifier.cacheSize;
    },
  };
}

/** `revocation: "none"`: nothing is revoked and the (empty) state is never stale. */
const NO_REVOCATIONS: RevocationState = Object.freeze({
  check: () => null,
  isStale: () => false,
});
