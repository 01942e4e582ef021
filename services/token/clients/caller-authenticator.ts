import { hash } from "node:crypto";
import { LRUCache } from "lru-cache";
import { GatehouseError } from "../../shared/errors/gatehouse-error.ts";
import type { AssertionAuthenticator } from "../assertions/assertion-authenticator.ts";
import { type BasicCredentials, parseBasicCredentials } from "./basic-credentials.ts";
import { CLIENT_ASSERTION_HEADER } from "./client-assertion-header.ts";
import type { ClientLookup, ClientRecord } from "./client-record.ts";
import { verifyClientSecret } from "./client-secret.ts";

export interface CallerAuthenticatorOptions {
  clients: ClientLookup;
  /**
   * How long a verified (client, secret) pair, a refused pair, or an unknown client id is answered
   * without asking the database or hashing again. `forget` ends it early after a change.
   */
  cacheTtlMs: number;
  cacheMax?: number;
  /**
   * Most secret checks (scrypt) queued or running at once over all clients, beyond each client id's
   * first. A call over it, or over `maxPendingChecksPerClient`, is refused with `rate_limited`
   * instead of queueing. Default 64.
   */
  maxPendingChecks?: number;
  /** Most secret checks pending for one client id at once. Default 4. */
  maxPendingChecksPerClient?: number;
  /**
   * Whether a client id is known to exist (from the client change watch). Ids it denies share one
   * lane of `maxPendingChecksPerClient` lookups, so made-up ids cost no more than one client's share.
   */
  isListed?: (clientId: string) => boolean;
  /** Told of every refused login (wrong secret, disabled or unknown client), cached answers too. */
  onRefused?: (clientId: string) => void;
  /** Client assertions (RFC 7523); without it every assertion is refused with `invalid_client`. */
  assertions?: AssertionAuthenticator;
  now?: () => number;
}

export interface CallerAuthenticator {
  /** The calling client from its `authorization` header, or `invalid_client`. */
  authenticate(authorization: string | undefined): Promise<ClientRecord>;
  /**
   * The calling client from an id and secret read elsewhere (the OAuth `client_secret_post` form
   * fields), under the same cache and bounds as `authenticate`, or `invalid_client`.
   */
  authenticateCredentials(credentials: BasicCredentials): Promise<ClientRecord>;
  /**
   * The calling client from an RFC 7523 assertion (OAuth `client_assertion`); `clientId`, when the
   * request names one too, must be the client it authenticates.
   */
  authenticateAssertion(assertion: string, clientId?: string): Promise<ClientRecord>;
  /**
   * The calling client of an RPC: from `x-gatehouse-client-assertion`, or else from `authorization`.
   * Both at once is `invalid_request`: one authentication method per request.
   */
  authenticateRequest(header: (name: string) => string | undefined): Promise<ClientRecord>;
  /** Forgets cached credentials and answers of one client (after a change to it) or of all. */
  forget(clientId?: string): void;
}

const INVALID = () => new GatehouseError("invalid_client", "client authentication failed");
/** The lane of client ids the change watch does not list; not a valid client id (it has a NUL). */
const UNLISTED = "\0unlisted";
/** Longer than any client id the admin API accepts (client-settings.ts, ≤ 64) and than ids it looks up (128). */
const MAX_CLIENT_ID = 128;
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is refused
const CONTROL = /[\u0000-\u001f\u007f]/;
/** scrypt takes ~50 ms a check here; a refused caller retries once a few have drained. */
const CHECKS_RETRY_MS = 200;

/**
 * Authenticates callers by client id and secret, so that a flood of made-up credentials cannot make
 * a client with the right secret fail:
 * - An unknown client id is refused after one primary-key lookup (then from a cache), with no scrypt,
 *   and ids not listed by the client change watch all share one client's share of checks.
 *   Client ids are not secrets (they are in every token's `client_id` and in audit rows), so a
 *   uniform answer time would hide nothing, while a decoy scrypt per made-up id is what let a flood
 *   of them exhaust the checks.
 * - Secret checks are shared fairly: each client id may always have one check running, at most
 *   `maxPendingChecksPerClient`, and only those beyond the first count against the global bound. A
 *   flood of wrong secrets for one id is refused on that id alone.
 * - A pair verified before (kept under a hash of both parts, never the secret) is answered from the
 *   cache, and once that entry is stale its re-check skips both bounds: only a caller who knows the
 *   secret can present it.
 */
export function createCallerAuthenticator(options: CallerAuthenticatorOptions): CallerAuthenticator {
  const now = options.now ?? Date.now;
  const max = options.cacheMax ?? 10_000;
  const ttlMs = options.cacheTtlMs;
  /** Verified pairs; `until` ends trust, the entry itself stays as proof the caller knew the secret. */
  const verified = new LRUCache<string, { client: ClientRecord; until: number }>({ max });
  const failures = new LRUCache<string, { clientId: string; until: number }>({ max });
  const unknownIds = new LRUCache<string, { until: number }>({ max });
  // Concurrent first calls with the same credentials share one check instead of queueing dozens.
  const inFlight = new Map<string, Promise<ClientRecord>>();
  const pendingPerClient = new Map<string, number>();
  let pendingBeyondFirst = 0;
  const maxPending = options.maxPendingChecks ?? 64;
  const maxPerClient = options.maxPendingChecksPerClient ?? 4;

  function secretMatches(client: ClientRecord, secret: string): Promise<boolean> {
    // An assertion-only client has no secret: every secret is wrong (with no previous one to try).
    if (client.secretHash === null) return Promise.resolve(false);
    return verifyClientSecret(secret, client.secretHash).then(
      async (ok) =>
        ok ||
        (client.previousSecretHash !== null &&
          client.previousSecretExpiresAt !== null &&
          client.previousSecretExpiresAt.getTime() > now() &&
          verifyClientSecret(secret, client.previousSecretHash)),
    );
  }

  /** Takes a check slot for `clientId`, or throws `rate_limited`; returns its release. */
  function admitCheck(clientId: string, trusted: boolean): () => void {
    if (trusted) return () => {};
    const pending = pendingPerClient.get(clientId) ?? 0;
    const beyondFirst = pending > 0;
    if (beyondFirst && (pending >= maxPerClient || pendingBeyondFirst >= maxPending)) {
      throw new GatehouseError(
        "rate_limited",
        `too many client authentications in progress; retry after ${CHECKS_RETRY_MS} ms`,
        { retryAfterMs: CHECKS_RETRY_MS, metadata: { limit: "authentication" } },
      );
    }
    pendingPerClient.set(clientId, pending + 1);
    if (beyondFirst) pendingBeyondFirst += 1;
    return () => {
      const left = (pendingPerClient.get(clientId) ?? 1) - 1;
      if (left === 0) pendingPerClient.delete(clientId);
      else pendingPerClient.set(clientId, left);
      if (beyondFirst) pendingBeyondFirst -= 1;
    };
  }

  async function verify(clientId: string, secret: string, trusted: boolean): Promise<ClientRecord> {
    const lane = options.isListed?.(clientId) === false ? UNLISTED : clientId;
    // Admitted before the lookup too, so refused calls cost neither a hash nor a database query.
    const release = admitCheck(lane, trusted);
    try {
      const client = await options.clients.findClient(clientId);
      if (client === null) {
        unknownIds.set(clientId, { until: now() + ttlMs });
        throw INVALID();
      }
      // A disabled client is refused only after the secret check, so its answer matches a wrong secret.
      if (!(await secretMatches(client, secret)) || client.disabledAt !== null) throw INVALID();
      return client;
    } finally {
      release();
    }
  }

  async function verifyCredentials({ clientId, secret }: BasicCredentials): Promise<ClientRecord> {
    // No client has such an id, and Postgres cannot even compare one holding a NUL (that was a 500).
    if (clientId.length > MAX_CLIENT_ID || CONTROL.test(clientId)) throw INVALID();
    const key = hash("sha256", `${clientId}\0${secret}`, "base64");
    const t = now();
    const hit = verified.get(key);
    if (hit && hit.until > t) return hit.client;
    const unknown = unknownIds.get(clientId);
    if (unknown && unknown.until > t) throw INVALID();
    const failed = failures.get(key);
    if (failed && failed.until > t) throw INVALID();
    let pending = inFlight.get(key);
    if (!pending) {
      pending = verify(clientId, secret, hit !== undefined).finally(() => inFlight.delete(key));
      inFlight.set(key, pending);
    }
    let client: ClientRecord;
    try {
      client = await pending;
    } catch (err) {
      if (err instanceof GatehouseError && err.code === "invalid_client") {
        verified.delete(key);
        failures.set(key, { clientId, until: t + ttlMs });
      }
      throw err;
    }
    verified.set(key, { client, until: t + ttlMs });
    return client;
  }

  async function authenticateCredentials(credentials: BasicCredentials): Promise<ClientRecord> {
    try {
      return await verifyCredentials(credentials);
    } catch (err) {
      if (err instanceof GatehouseError && err.code === "invalid_client")
        options.onRefused?.(credentials.clientId);
      throw err;
    }
  }

  function authenticateAssertion(assertion: string, clientId?: string): Promise<ClientRecord> {
    if (options.assertions === undefined) {
      return Promise.reject(new GatehouseError("invalid_client", "client assertions are not accepted here"));
    }
    // Refused assertions are failed logins too (audited like refused secrets); a federated one
    // may name no client, and is then counted with the unknown ids.
    return options.assertions.authenticate(assertion, clientId).catch((err: unknown) => {
      if (
        err instanceof GatehouseError &&
        (err.code === "invalid_client" || err.code.startsWith("assertion_"))
      )
        options.onRefused?.(clientId ?? "");
      throw err;
    });
  }

  function authenticate(authorization: string | undefined): Promise<ClientRecord> {
    const credentials = parseBasicCredentials(authorization);
    if (credentials === null) {
      return Promise.reject(
        new GatehouseError(
          "invalid_client",
          "client authentication required: authorization: Basic base64(client_id:secret), or x-gatehouse-client-assertion",
        ),
      );
    }
    return authenticateCredentials(credentials);
  }

  return {
    authenticate,
    authenticateAssertion,
    authenticateRequest(header) {
      const assertion = header(CLIENT_ASSERTION_HEADER);
      if (assertion === undefined) return authenticate(header("authorization"));
      if (header("authorization") !== undefined) {
        return Promise.reject(
          new GatehouseError(
            "invalid_request",
            `use one client authentication method: authorization or ${CLIENT_ASSERTION_HEADER}, not both`,
          ),
        );
      }
      return authenticateAssertion(assertion);
    },
    authenticateCredentials,
    forget(clientId) {
      options.assertions?.forget(clientId);
      if (clientId === undefined) {
        verified.clear();
        failures.clear();
        unknownIds.clear();
        return;
      }
      for (const [key, entry] of verified.entries()) if (entry.client.id === clientId) verified.delete(key);
      for (const [key, entry] of failures.entries()) if (entry.clientId === clientId) failures.delete(key);
      unknownIds.delete(clientId);
    },
  };
}
