import type { KeyObject } from "node:crypto";
import { LRUCache } from "lru-cache";
import { GatehouseError } from "../../shared/errors/gatehouse-error.ts";
import { importJwks, type VerificationKey } from "../../sidecar/jwks/jwk-import.ts";
import { createJwksCache, type JwksCache, type JwksLogger } from "../../sidecar/jwks/jwks-cache.ts";
import type { VerifyAlgorithm } from "../../sidecar/jwks/key-algorithm.ts";
import type { KeyResolver } from "../../sidecar/verifier/create-verifier.ts";

/** A client's registered keys for private_key_jwt: inline, or at a URL. */
interface ClientKeySource {
  readonly clientId: string;
  readonly jwks: string | null;
  readonly jwksUri: string | null;
}

export interface ClientKeySets {
  /** The resolver for a client's keys; undefined when it registered none. */
  resolverFor(client: ClientKeySource): KeyResolver | undefined;
  /** Drops what is held for a client (after a change to it), or for all. */
  forget(clientId?: string): void;
  stop(): void;
}

export interface ClientKeySetsOptions {
  fetch?: typeof globalThis.fetch;
  cooldownMs?: number;
  /** Most clients whose remote key sets are held at once. Default 1000. */
  maxRemote?: number;
  logger?: JwksLogger;
}

/**
 * The keys of private_key_jwt clients. An inline JWKS is imported once per stored text. A
 * `jwks_uri` gets a JWKS cache of its own (the sidecar's: unknown-kid refetch with a cooldown, last
 * good set served while the client's server is down), created at the client's first assertion and
 * stopped when evicted or forgotten.
 */
export function createClientKeySets(options: ClientKeySetsOptions = {}): ClientKeySets {
  const inline = new LRUCache<string, { text: string; keys: Promise<ReadonlyMap<string, VerificationKey>> }>({
    max: 10_000,
  });
  const remote = new LRUCache<string, { uri: string; cache: JwksCache }>({
    max: options.maxRemote ?? 1000,
    dispose: (entry) => entry.cache.stop(),
  });

  function inlineResolver(clientId: string, text: string): KeyResolver {
    let held = inline.get(clientId);
    if (held === undefined || held.text !== text) {
      // Validated at registration; a row edited by hand that no longer parses has no keys.
      const keys = importJwks(JSON.parse(text)).then(
        (set) => set.keys,
        () => new Map<string, VerificationKey>(),
      );
      held = { text, keys };
      inline.set(clientId, held);
    }
    const { keys } = held;
    return async ({ kid, alg }) => pick(await keys, kid, alg);
  }

  function remoteResolver(clientId: string, uri: string): KeyResolver {
    let held = remote.get(clientId);
    if (held === undefined || held.uri !== uri) {
      held = {
        uri,
        cache: createJwksCache({
          url: uri,
          ...(options.fetch === undefined ? {} : { fetch: options.fetch }),
          ...(options.cooldownMs === undefined ? {} : { cooldownMs: options.cooldownMs }),
          ...(options.logger === undefined ? {} : { logger: options.logger }),
        }),
      };
      remote.set(clientId, held);
    }
    return held.cache.keyResolver;
  }

  return {
    resolverFor(client) {
      if (client.jwks !== null) return inlineResolver(client.clientId, client.jwks);
      if (client.jwksUri !== null) return remoteResolver(client.clientId, client.jwksUri);
      return undefined;
    },
    forget(clientId) {
      if (clientId === undefined) {
        inline.clear();
        remote.clear();
        return;
      }
      inline.delete(clientId);
      remote.delete(clientId);
    },
    stop() {
      remote.clear();
    },
  };
}

function pick(keys: ReadonlyMap<string, VerificationKey>, kid: string, alg: VerifyAlgorithm): KeyObject {
  const found = keys.get(kid);
  if (found === undefined) throw new GatehouseError("unknown_key", "no key with this kid");
  if (found.alg !== alg) {
    throw new GatehouseError("unsupported_algorithm", `key ${kid} is a key for ${found.alg}, not ${alg}`);
  }
  return found.key;
}
