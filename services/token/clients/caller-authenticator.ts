import { createHash } from "node:crypto";
import { LRUCache } from "lru-cache";
import { GatehouseError } from "../../shared/errors/gatehouse-error.ts";
import { parseBasicCredentials } from "./basic-credentials.ts";
import type { ClientLookup, ClientRecord } from "./client-record.ts";
import { DECOY_SECRET_HASH, verifyClientSecret } from "./client-secret.ts";

export interface CallerAuthenticatorOptions {
  clients: ClientLookup;
  /** How long a verified (client, secret) pair is trusted without hashing again. */
  cacheTtlMs: number;
  cacheMax?: number;
  /**
   * How long a refused (client, secret) pair is answered `invalid_client` without hashing again.
   * Default 60 s. Cleared with `forget`, so a client created or rotated to that secret works at once.
   */
  failureTtlMs?: number;
  /**
   * Most secret checks (scrypt) queued or running at once. Beyond it a call is refused with
   * `rate_limited` instead of queueing behind the others: a flood of made-up credentials then costs
   * bounded CPU and cannot delay the clients whose credentials are cached. Default 64.
   */
  maxPendingChecks?: number;
  now?: () => number;
}

export interface CallerAuthenticator {
  /** The calling client from its `authorization` header, or `invalid_client`. */
  authenticate(authorization: string | undefined): Promise<ClientRecord>;
  /** Forgets cached credentials of one client (after a change to it) or of all. */
  forget(clientId?: string): void;
}

const INVALID = () => new GatehouseError("invalid_client", "client authentication failed");
/** scrypt takes ~50 ms a check here; a refused caller retries once a few have drained. */
const CHECKS_RETRY_MS = 200;

/**
 * Authenticates callers by client id and secret. scrypt costs milliseconds by design, so a verified
 * pair is cached briefly under a hash of both parts (never the secret itself), and so is a refused
 * pair, so repeating a wrong secret costs nothing; an unknown client still pays for one scrypt so
 * its first answer takes as long as a wrong secret's.
 */
export function createCallerAuthenticator(options: CallerAuthenticatorOptions): CallerAuthenticator {
  const now = options.now ?? Date.now;
  const cache = new LRUCache<string, { client: ClientRecord; until: number }>({
    max: options.cacheMax ?? 10_000,
  });
  // Concurrent first calls with the same credentials share one scrypt instead of queueing dozens.
  const inFlight = new Map<string, Promise<ClientRecord>>();
  const failures = new LRUCache<string, { clientId: string; until: number }>({
    max: options.cacheMax ?? 10_000,
  });
  const failureTtlMs = options.failureTtlMs ?? 60_000;
  const maxPendingChecks = options.maxPendingChecks ?? 64;

  async function verify(clientId: string, secret: string): Promise<ClientRecord> {
    const client = await options.clients.findClient(clientId);
    if (client === null) {
      await verifyClientSecret(secret, DECOY_SECRET_HASH);
      throw INVALID();
    }
    let ok = await verifyClientSecret(secret, client.secretHash);
    if (!ok && client.previousSecretHash !== null && client.previousSecretExpiresAt !== null) {
      ok =
        client.previousSecretExpiresAt.getTime() > now() &&
        (await verifyClientSecret(secret, client.previousSecretHash));
    }
    // A disabled client is refused only after the secret check, so its answer matches a wrong secret.
    if (!ok || client.disabledAt !== null) throw INVALID();
    return client;
  }

  return {
    async authenticate(authorization) {
      const credentials = parseBasicCredentials(authorization);
      if (credentials === null) {
        throw new GatehouseError(
          "invalid_client",
          "client authentication required: authorization: Basic base64(client_id:secret)",
        );
      }
      const key = createHash("sha256")
        .update(credentials.clientId)
        .update("\0")
        .update(credentials.secret)
        .digest("base64");
      const hit = cache.get(key);
      const t = now();
      if (hit && hit.until > t) return hit.client;
      const failed = failures.get(key);
      if (failed && failed.until > t) throw INVALID();
      let pending = inFlight.get(key);
      if (!pending) {
        if (inFlight.size >= maxPendingChecks) {
          throw new GatehouseError(
            "rate_limited",
            `too many client authentications in progress; retry after ${CHECKS_RETRY_MS} ms`,
            { retryAfterMs: CHECKS_RETRY_MS, metadata: { limit: "authentication" } },
          );
        }
        pending = verify(credentials.clientId, credentials.secret).finally(() => inFlight.delete(key));
        inFlight.set(key, pending);
      }
      let client: ClientRecord;
      try {
        client = await pending;
      } catch (err) {
        if (err instanceof GatehouseError && err.code === "invalid_client") {
          failures.set(key, { clientId: credentials.clientId, until: t + failureTtlMs });
        }
        throw err;
      }
      cache.set(key, { client, until: t + options.cacheTtlMs });
      return client;
    },
    forget(clientId) {
      if (clientId === undefined) {
        cache.clear();
        failures.clear();
        return;
      }
      for (const [key, entry] of cache.entries()) if (entry.client.id === clientId) cache.delete(key);
      for (const [key, entry] of failures.entries()) if (entry.clientId === clientId) failures.delete(key);
    },
  };
}
