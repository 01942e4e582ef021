import { GatehouseError } from "../../shared/errors/gatehouse-error.ts";
import type { Caller } from "../flows/flow-deps.ts";
import { clientRateLimit } from "../overload/client-rate-limit.ts";
import type { OverloadGuard } from "../overload/overload-guard.ts";
import { mayCall, type TokenServiceMethod } from "./caller-roles.ts";
import type { ClientRecord } from "./client-record.ts";

export interface CallerGateDeps {
  /** Per-client rate limits and in-flight cap; none when absent. */
  overload?: OverloadGuard | undefined;
  /**
   * Revoke's per-client rate limit, apart from `overload` because Revoke has no in-flight cap: a
   * revocation is never refused for load, only a client revoking faster than its limit.
   */
  revokeLimit?: OverloadGuard | undefined;
}

/**
 * Runs one TokenService flow for an authenticated caller: `authenticate` (however the protocol
 * carries credentials) → role check → the caller's overload budget → the flow. The RPC handlers and
 * the OAuth endpoints both come through here, so a rule about who may call what lives once.
 */
export type CallerGate = <T>(
  method: TokenServiceMethod,
  authenticate: () => Promise<ClientRecord>,
  requestId: string,
  flow: (caller: Caller) => Promise<T>,
) => Promise<T>;

export function createCallerGate(deps: CallerGateDeps): CallerGate {
  return async (method, authenticate, requestId, flow) => {
    const client = await authenticate();
    if (!mayCall(client.roles, method)) {
      throw new GatehouseError("unauthorized_client", `client ${client.id} may not call ${method}`, {
        metadata: { method },
      });
    }
    const caller = { client, requestId };
    // Limits are per client, so admission waits until the caller is known. The client's own limit
    // comes with the cached record, so a change to it arrives as a disable does (client-change-watch).
    if (method === "Revoke") {
      deps.revokeLimit?.admit(client.id, method, clientRateLimit(client));
      return flow(caller);
    }
    if (deps.overload === undefined) return flow(caller);
    const release = deps.overload.admit(client.id, method, clientRateLimit(client));
    try {
      return await flow(caller);
    } finally {
      release();
    }
  };
}
