import { z } from "zod";
import { createJwksCache, type JwksCache, type JwksLogger } from "../../sidecar/jwks/jwks-cache.ts";
import { httpJwksSource, type JwksSource } from "../../sidecar/jwks/jwks-source.ts";
import { jwksUrlProblem } from "./jwks-url-policy.ts";

/** A platform issuer whose tokens may authenticate clients (federated client authentication). */
export interface TrustedIssuer {
  readonly issuer: string;
  /** Absent: read from `<issuer>/.well-known/openid-configuration`, as Kubernetes serves it. */
  readonly jwksUri?: string | undefined;
}

const url = z.string().superRefine((s, ctx) => {
  const problem = jwksUrlProblem(s);
  if (problem !== null) ctx.addIssue({ code: "custom", message: problem });
});

/**
 * `GATEHOUSE_TRUSTED_ISSUERS`: a JSON list of `{ "issuer": URL, "jwks_uri"?: URL }`, each issuer
 * once. Unknown members are refused so a typo (`jwksUri`) does not silently fall back to discovery.
 */
export function trustedIssuersSetting() {
  return z
    .string()
    .trim()
    .transform((s, ctx) => {
      if (s === "") return [];
      try {
        return JSON.parse(s) as unknown;
      } catch {
        ctx.addIssue({ code: "custom", message: "expected a JSON list" });
        return z.NEVER;
      }
    })
    .pipe(
      z
        .array(z.strictObject({ issuer: url, jwks_uri: url.optional() }))
        .max(32)
        .refine((list) => new Set(list.map((i) => i.issuer)).size === list.length, {
          error: "names an issuer twice",
        }),
    )
    .transform((list): TrustedIssuer[] => list.map((i) => ({ issuer: i.issuer, jwksUri: i.jwks_uri })));
}

/** The key sets of the trusted issuers, by issuer, each kept with the sidecar's JWKS discipline. */
export interface TrustedIssuerKeys {
  /** The issuer's key cache, or undefined when `iss` is not a trusted issuer. */
  get(issuer: string): JwksCache | undefined;
  stop(): void;
}

export interface TrustedIssuerKeysOptions {
  fetch?: typeof globalThis.fetch;
  /** Least time between refetches an unknown kid may trigger. Default 30 s. */
  cooldownMs?: number;
  logger?: JwksLogger;
}

export function createTrustedIssuerKeys(
  issuers: readonly TrustedIssuer[],
  options: TrustedIssuerKeysOptions = {},
): TrustedIssuerKeys {
  const caches = new Map<string, JwksCache>();
  for (const { issuer, jwksUri } of issuers) {
    const fetchOptions = options.fetch === undefined ? {} : { fetch: options.fetch };
    const source =
      jwksUri === undefined
        ? discoveredJwksSource(issuer, options.fetch)
        : httpJwksSource(jwksUri, fetchOptions);
    caches.set(
      issuer,
      createJwksCache({
        source,
        ...(options.cooldownMs === undefined ? {} : { cooldownMs: options.cooldownMs }),
        ...(options.logger === undefined ? {} : { logger: options.logger }),
      }),
    );
  }
  return {
    get: (issuer) => caches.get(issuer),
    stop() {
      for (const cache of caches.values()) cache.stop();
    },
  };
}

/**
 * The JWKS named by the issuer's OpenID discovery document. The document is read again on every
 * fetch (they are rare: start, schedule, unknown kid), so a moved `jwks_uri` is followed; its
 * `issuer` must be ours exactly (OpenID Connect Discovery §4.3), or a document served elsewhere
 * could point us at any key set.
 */
function discoveredJwksSource(issuer: string, doFetch = globalThis.fetch): JwksSource {
  const discovery = `${issuer.replace(/\/+$/, "")}/.well-known/openid-configuration`;
  return async (request) => {
    const res = await doFetch(discovery, { headers: { accept: "application/json" }, signal: request.signal });
    if (res.status !== 200) {
      await res.body?.cancel();
      throw new Error(`discovery document answered HTTP ${res.status}`);
    }
    const doc = (await res.json()) as { issuer?: unknown; jwks_uri?: unknown };
    if (doc.issuer !== issuer) throw new Error("discovery document names another issuer");
    if (typeof doc.jwks_uri !== "string" || jwksUrlProblem(doc.jwks_uri) !== null) {
      throw new Error("discovery document has no usable jwks_uri");
    }
    return httpJwksSource(doc.jwks_uri, { fetch: doFetch })(request);
  };
}
