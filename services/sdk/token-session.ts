import { GatehouseError } from "../shared/errors/gatehouse-error.ts";
import type { TokenClient, TokenSet } from "./token-client.ts";

export interface TokenSessionOptions {
  /**
   * Refresh once the access token has less than this left. Default: 60 s, or a fifth of the
   * token's lifetime when that is shorter.
   */
  refreshBeforeMs?: number;
  /** Called with every new token set, e.g. to store the new refresh token. */
  onRefresh?: (tokens: TokenSet) => void;
}

export interface TokenSession {
  /**
   * The access token, refreshed first when it is about to expire. Callers asking together share
   * one refresh. When that refresh cannot reach the token service but the current token has not
   * expired yet, the current token is returned and the next call tries again.
   */
  accessToken(): Promise<string>;
  /** The tokens held now. */
  readonly tokens: TokenSet;
}

/** Errors that say "not now" rather than "never": the old access token is still good to use. */
const TRANSIENT = new Set<string>(["unavailable", "request_timeout", "rate_limited"]);

export function createTokenSession(
  client: Pick<TokenClient, "refresh">,
  initial: TokenSet,
  now: () => number,
  options: TokenSessionOptions = {},
): TokenSession {
  if (options.refreshBeforeMs !== undefined && !(options.refreshBeforeMs >= 0)) {
    throw new TypeError("refreshBeforeMs must be ≥ 0");
  }
  let tokens = initial;
  let refreshAt = dueTime(tokens, now(), options.refreshBeforeMs);

  async function accessToken(): Promise<string> {
    const held = tokens;
    if (now() < refreshAt) return held.accessToken;
    try {
      const fresh = await client.refresh(held.refreshToken);
      // Another caller may have installed this set, or a newer one, while we waited.
      if (tokens === held) {
        tokens = fresh;
        refreshAt = dueTime(fresh, now(), options.refreshBeforeMs);
        options.onRefresh?.(fresh);
      }
      return tokens.accessToken;
    } catch (err) {
      const error = GatehouseError.from(err);
      if (TRANSIENT.has(error.code) && now() < held.accessTokenExpiresAt) return held.accessToken;
      throw error;
    }
  }

  return {
    accessToken,
    get tokens() {
      return tokens;
    },
  };
}

function dueTime(tokens: TokenSet, receivedAt: number, refreshBeforeMs: number | undefined): number {
  const lifetime = Math.max(0, tokens.accessTokenExpiresAt - receivedAt);
  const margin = refreshBeforeMs ?? Math.min(60_000, lifetime / 5);
  return tokens.accessTokenExpiresAt - margin;
}
