/** What one JWKS fetch brought: a new document, or confirmation that the one we hold is current. */
export type JwksFetchResult =
  | {
      readonly status: "ok";
      readonly document: unknown;
      readonly etag?: string | undefined;
      /** From `Cache-Control: max-age`; undefined when the source says nothing. */
      readonly maxAgeMs?: number | undefined;
    }
  | { readonly status: "not_modified"; readonly maxAgeMs?: number | undefined };

/**
 * Where a JWKS comes from. The HTTP source below is one; the gRPC `GetJwks` call is another. A source
 * should honour `signal`; the cache also stops waiting on its own after its timeout.
 */
export type JwksSource = (request: {
  readonly etag: string | undefined;
  readonly signal: AbortSignal;
}) => Promise<JwksFetchResult>;

export interface HttpJwksSourceOptions {
  fetch?: typeof globalThis.fetch;
  /** Larger documents are refused. Default 1 MiB. */
  maxBytes?: number;
}

/** A JWKS served over HTTP(S), with `If-None-Match` revalidation and `Cache-Control: max-age`. */
export function httpJwksSource(url: string | URL, options: HttpJwksSourceOptions = {}): JwksSource {
  const target = new URL(url);
  if (target.protocol !== "https:" && target.protocol !== "http:") {
    throw new TypeError(`JWKS URL must be http or https: ${target.href}`);
  }
  const doFetch = options.fetch ?? globalThis.fetch;
  const maxBytes = options.maxBytes ?? 1 << 20;
  return async ({ etag, signal }) => {
    const headers: Record<string, string> = { accept: "application/jwk-set+json, application/json" };
    if (etag !== undefined) headers["if-none-match"] = etag;
    const res = await doFetch(target, { headers, signal });
    const maxAgeMs = parseMaxAge(res.headers.get("cache-control"));
    if (res.status === 304 && etag !== undefined) {
      await res.body?.cancel();
      return { status: "not_modified", maxAgeMs };
    }
    if (res.status !== 200) {
      await res.body?.cancel();
      throw new Error(`JWKS endpoint answered HTTP ${res.status}`);
    }
    if (Number(res.headers.get("content-length") ?? 0) > maxBytes) {
      await res.body?.cancel();
      throw new Error(`JWKS is larger than ${maxBytes} bytes`);
    }
    const text = await res.text();
    if (text.length > maxBytes) throw new Error(`JWKS is larger than ${maxBytes} bytes`);
    return { status: "ok", document: JSON.parse(text), etag: res.headers.get("etag") ?? undefined, maxAgeMs };
  };
}

/** `max-age` in ms; 0 for `no-cache`/`no-store`; undefined when absent. */
function parseMaxAge(cacheControl: string | null): number | undefined {
  if (cacheControl === null) return undefined;
  let maxAge: number | undefined;
  for (const directive of cacheControl.toLowerCase().split(",")) {
    const [name, value] = directive.trim().split("=", 2);
    if (name === "no-store" || name === "no-cache") return 0;
    if (name === "max-age" && value !== undefined && /^\d+$/.test(value.trim())) {
      maxAge = Number(value.trim()) * 1000;
    }
  }
  return maxAge;
}
