import { CLIENT_CHANGE_BOUND_MS } from "./client-change-watch.ts";

/**
 * The `notBefore` of the `client_disabled` event for a disable at `disabledAtMs` (epoch ms): tokens
 * of the client issued before it are refused by every sidecar for their whole life. It covers what
 * other replicas may still issue on cached credentials until their change watch sees the disable,
 * and is rounded up to a whole second because `iat` is in seconds.
 */
export function disableCutOffMs(disabledAtMs: number): number {
  return Math.ceil((disabledAtMs + CLIENT_CHANGE_BOUND_MS) / 1000) * 1000;
}
