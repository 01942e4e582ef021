import { createHash, type KeyObject } from "node:crypto";
import { compactVerify } from "jose";
import { LRUCache } from "lru-cache";
import { GatehouseError } from "../../shared/errors/gatehouse-error.ts";
import { fingerprint } from "../../shared/logging/fingerprint.ts";
import type { KeyResolver } from "../../sidecar/verifier/create-verifier.ts";
import type { ClientRecord } from "../clients/client-record.ts";
import type { AssertionClientLookup } from "./assertion-client-lookup.ts";
import type { AssertionMetrics } from "./assertion-metrics.ts";
import { checkAssertionClaims, readAssertion, refuse, type UnverifiedAssertion } from "./assertion-rules.ts";
import type { ClientKeySets } from "./client-key-sets.ts";
import type { JtiReplayStore } from "./jti-replay-store.ts";
import type { TrustedIssuerKeys } from "./trusted-issuers.ts";

/** The part of a pino logger the authenticator uses. */
interface AssertionLogger {
  info(obj: object, msg: string): void;
}

export interface AssertionAuthenticatorOptions {
  clients: AssertionClientLookup;
  issuerKeys: TrustedIssuerKeys;
  clientKeys: ClientKeySets;
  replay: JtiReplayStore;
  /** What `aud` may name: our issuer and our token endpoint URL. */
  audiences: readonly string[];
  maxLifetimeMs: number;
  clockSkewMs: number;
  metrics: AssertionMetrics;
  log?: AssertionLogger;
  /** Verified assertions held at once. Default 10,000. */
  cacheMax?: number;
  now?: () => number;
}

export interface AssertionAuthenticator {
  /**
   * The client an RFC 7523 assertion authenticates, or a refusal with its `assertion_*` reason.
   * `clientId`, when the request also names one (OAuth `client_id`), must be that client.
   */
  authenticate(assertion: string, clientId?: string): Promise<ClientRecord>;
  /** Forgets verified assertions and keys of one client (after a change to it) or of all. */
  forget(clientId?: string): void;
  stop(): void;
}

type Source = "federated" | "private_key_jwt";

interface Verified {
  client: ClientRecord;
  source: Source;
  expiresAtMs: number;
}

/** Ids no client has, or whose client registered no keys, are answered from here for a while. */
const UNKNOWN_ISSUER_TTL_MS = 30_000;
const MAX_CLIENT_ID = 128;

/**
 * Authenticates callers by client assertion (RFC 7523 §2.2), from one of two trust sources:
 * - federated: `iss` is a trusted platform issuer (a Kubernetes cluster's service-account issuer);
 *   the client is the one registered for that issuer and `sub`. The issuer's keys, signature and
 *   claims are checked before the client is looked up, so made-up subjects cost no query.
 * - private_key_jwt: `iss` = `sub` = a client id whose registered keys (inline or `jwks_uri`)
 *   signed it; its `jti` is claimed in Postgres, so the assertion works once on any replica.
 * A verified assertion is kept (by hash) until it expires: a federated token, meant to be reused
 * for its life, then costs one hash. A private_key_jwt one found there is a replay on this replica
 * and is refused without asking the database, so the cache never skips the `jti` rule.
 */
export function createAssertionAuthenticator(options: AssertionAuthenticatorOptions): AssertionAuthenticator {
  const now = options.now ?? Date.now;
  const verified = new LRUCache<string, Verified>({ max: options.cacheMax ?? 10_000 });
  const unknownIssuers = new LRUCache<string, true>({ max: 10_000, ttl: UNKNOWN_ISSUER_TTL_MS });
  const { metrics } = options;

  async function verify(a: UnverifiedAssertion, resolver: KeyResolver, requireJti: boolean) {
    let key: KeyObject;
    try {
      key = await resolver({ kid: a.kid, alg: a.alg });
    } catch (err) {
      if (err instanceof GatehouseError && err.code === "unknown_key") {
        throw refuse("assertion_unknown_key", "no key with the client assertion's kid");
      }
      if (err instanceof GatehouseError && err.code === "unsupported_algorithm") {
        throw refuse("assertion_algorithm_mismatch", "client assertion alg is not the algorithm of its key");
      }
      throw err;
    }
    try {
      await compactVerify(a.token, key, { algorithms: [a.alg] });
    } catch {
      throw refuse("assertion_bad_signature", "client assertion signature does not verify");
    }
    return checkAssertionClaims(a.claims, {
      audiences: options.audiences,
      nowS: now() / 1000,
      maxLifetimeS: options.maxLifetimeMs / 1000,
      skewS: options.clockSkewMs / 1000,
      requireJti,
    });
  }

  async function federated(a: UnverifiedAssertion, resolver: KeyResolver): Promise<Verified> {
    const { expiresAtS } = await verify(a, resolver, false);
    const client = await options.clients.findFederatedClient(a.iss, a.sub);
    if (client === null) {
      throw refuse("assertion_subject_mismatch", "no client is registered for this subject of the issuer");
    }
    return { client, source: "federated", expiresAtMs: expiresAtS * 1000 };
  }

  async function privateKeyJwt(a: UnverifiedAssertion): Promise<Verified> {
    const untrusted = () =>
      refuse("assertion_untrusted_issuer", "client assertion iss is not a trusted issuer");
    if (a.iss.length > MAX_CLIENT_ID || unknownIssuers.has(a.iss)) throw untrusted();
    const client = await options.clients.findKeyedClient(a.iss);
    const resolver =
      client === null ? undefined : options.clientKeys.resolverFor({ ...client, clientId: client.id });
    if (client === null || resolver === undefined) {
      unknownIssuers.set(a.iss, true);
      throw untrusted();
    }
    if (a.sub !== a.iss)
      throw refuse("assertion_subject_mismatch", "private_key_jwt assertion sub must equal iss");
    const { expiresAtS, jti } = await verify(a, resolver, true);
    const expiresAt = new Date(expiresAtS * 1000);
    if (!(await options.replay.claim(client.id, jti!, expiresAt, new Date(now())))) {
      throw refuse("assertion_replayed", "client assertion jti was already used");
    }
    const { jwks: _jwks, jwksUri: _uri, ...record } = client;
    return { client: record, source: "private_key_jwt", expiresAtMs: expiresAtS * 1000 };
  }

  /** Verifies an assertion not seen before; `tell` learns its trust source as soon as `iss` says. */
  function fresh(assertion: string, tell: (source: Source) => void): Promise<Verified> {
    const a = readAssertion(assertion);
    const issuer = options.issuerKeys.get(a.iss);
    tell(issuer === undefined ? "private_key_jwt" : "federated");
    return issuer === undefined ? privateKeyJwt(a) : federated(a, issuer.keyResolver);
  }

  async function authenticate(assertion: string, clientId?: string): Promise<ClientRecord> {
    const key = createHash("sha256").update(assertion).digest("base64");
    let found = verified.get(key);
    let source: Source | "unknown" = found?.source ?? "unknown";
    try {
      if (found !== undefined && found.expiresAtMs <= now()) {
        verified.delete(key);
        found = undefined;
      }
      if (found?.source === "private_key_jwt") {
        throw refuse("assertion_replayed", "client assertion jti was already used");
      }
      if (found === undefined) {
        found = await fresh(assertion, (known) => {
          source = known;
        });
        verified.set(key, found);
      }
      const { client } = found;
      if (client.disabledAt !== null)
        throw new GatehouseError("invalid_client", "client authentication failed");
      if (clientId !== undefined && clientId !== client.id) {
        throw new GatehouseError(
          "invalid_request",
          "client_id does not name the client the assertion authenticates",
          {
            metadata: { field: "client_id" },
          },
        );
      }
      metrics.counted(source, "ok");
      return client;
    } catch (err) {
      const code = err instanceof GatehouseError ? err.code : "internal";
      metrics.counted(source, code);
      options.log?.info(
        { assertion: fingerprint(assertion), source, code, clientId: found?.client.id },
        "client assertion refused",
      );
      throw err;
    }
  }

  return {
    authenticate,
    forget(clientId) {
      options.clientKeys.forget(clientId);
      if (clientId === undefined) {
        verified.clear();
        unknownIssuers.clear();
        return;
      }
      unknownIssuers.delete(clientId);
      for (const [key, entry] of verified.entries()) if (entry.client.id === clientId) verified.delete(key);
    },
    stop() {
      options.issuerKeys.stop();
      options.clientKeys.stop();
    },
  };
}
