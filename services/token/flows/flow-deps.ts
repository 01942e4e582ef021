import type { Logger } from "../../shared/logging/index.ts";
import type { KeyRing } from "../keys/key-ring.ts";
import type { RefreshKeys } from "../keys/refresh-keys.ts";
import type { TokenStore } from "../store/token-store.ts";

/** What every token-service flow works with; built once at start-up. */
export interface FlowDeps {
  store: TokenStore;
  keys: KeyRing;
  issuer: string;
  /** HMAC keys deriving a refresh token's successor, by kid (keys/refresh-keys.ts). */
  successorKeys: Pick<RefreshKeys, "active" | "byKid">;
  /** HMAC keys authenticating refresh tokens, by the kid a token carries (keys/refresh-keys.ts). */
  macKeys: Pick<RefreshKeys, "active" | "byKid" | "find">;
  /** Longest access-token lifetime of any client: how long a revocation event matters. */
  maxAccessTokenTtlSeconds: number;
  /** Epoch milliseconds; injectable so tests control time. */
  now: () => number;
  /**
   * Publishes committed revocation events to the sidecars; resolves true when they are out. Until
   * the revocation stream exists this answers false and the outbox rows wait for the relay.
   */
  publish(eventIds: readonly string[]): Promise<boolean>;
  log: Logger;
}

/** The caller as flows need it: the authenticated client and the request's id for audit rows. */
export interface Caller {
  client: import("../clients/client-record.ts").ClientRecord;
  requestId: string;
}
