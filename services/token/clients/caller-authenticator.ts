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
  now?: () => number;
}

export interface CallerAuthenticator {
  /** The calling client from its `authorization` header, or `invalid_client`. */
  authenticate(authorization: string | undefined): Promise<ClientRecord>;
  /** Forgets cached credentials of one client (after a change to it) or of all. */
  forget(clientId?: string): void;
}

const INVALID = () => new GatehouseError("invalid_client", "client authentication failed");

/**
 * Authenticates callers by client id and secret. scrypt costs milliseconds by design, so a verified
 * pair is cached briefly under a hash of both parts (never the secret itself); a wrong secret is
 * never cached, and an unknown client still pays for one scrypt so its answer takes as long.
 */
export function createCallerAuthenticator(options: CallerAuthenticatorOptions): CallerAuthenticator {
  const now = options.now ?? Date.now;
  const cache = new LRUCache<string, { client: ClientRecord; until: number }>({
    max: options.cacheMax ?? 10_000,
  });
  // Concurrent first calls with the same credentials share one scrypt instead of queueing dozens.
  const inFlight = new Map<string, Promise<ClientRecord>>();

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
      let pending = inFlight.get(key);
      if (!pending) {
        pending = verify(credentials.clientId, credentials.secret).finally(() => inFlight.delete(key));
        inFlight.set(key, pending);
      }
      const client = await pending;
      cache.set(key, { client, until: t + options.cacheTtlMs });
      return client;
    },
    forget(clientId) {
      if (clientId === undefined) {
        cache.clear();
        return;
      }
      for (const [key, entry] of cache.entries()) if (entry.client.id === clientId) cache.delete(key);
    },
  };
}
