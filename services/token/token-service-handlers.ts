import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { PrismaClient } from "../gen/prisma/client.ts";
import { TokenService } from "../gen/proto/gatehouse/v1/token_service_pb.ts";
import { GatehouseError } from "../shared/errors/gatehouse-error.ts";
import type { CallContext } from "../shared/rpc/call-context.ts";
import { defineService, type ServiceRegistration } from "../shared/rpc/service-handlers.ts";
import type { CallerAuthenticator } from "./clients/caller-authenticator.ts";
import { mayCall, type TokenServiceMethod } from "./clients/caller-roles.ts";
import type { Caller, FlowDeps } from "./flows/flow-deps.ts";
import { introspect } from "./flows/introspect-flow.ts";
import { issue, issueServiceToken } from "./flows/issue-flow.ts";
import { listSessions } from "./flows/list-sessions-flow.ts";
import { refresh } from "./flows/refresh-flow.ts";
import { revoke } from "./flows/revoke-flow.ts";
import { exchangeToken } from "./flows/token-exchange-flow.ts";
import type { OverloadGuard } from "./overload/overload-guard.ts";

export interface TokenServiceHandlerDeps extends FlowDeps {
  prisma: PrismaClient;
  authenticator: CallerAuthenticator;
  /** Per-client rate limits and in-flight cap; none when absent. */
  overload?: OverloadGuard;
  /**
   * Revoke's per-client rate limit, apart from `overload` because Revoke has no in-flight cap: a
   * revocation is never refused for load, only a client revoking faster than its limit.
   */
  revokeLimit?: OverloadGuard;
}

/**
 * TokenService over every protocol: authenticate the calling client, check its role may call the
 * method, then run the flow. GetJwks is public, as a JWKS is.
 */
export function tokenServiceHandlers(deps: TokenServiceHandlerDeps): ServiceRegistration {
  async function caller(ctx: CallContext, method: TokenServiceMethod): Promise<Caller> {
    const client = await deps.authenticator.authenticate(ctx.header("authorization"));
    if (!mayCall(client.roles, method)) {
      throw new GatehouseError("unauthorized_client", `client ${client.id} may not call ${method}`, {
        metadata: { method },
      });
    }
    return { client, requestId: ctx.requestId };
  }

  /**
   * Runs a flow inside the caller's overload budget, admitted only once the caller is known (limits
   * are per client). Revoke is not guarded here: a revocation must not be refused for load.
   */
  async function guarded<T>(
    ctx: CallContext,
    method: TokenServiceMethod,
    flow: (caller: Caller) => Promise<T>,
  ): Promise<T> {
    const who = await caller(ctx, method);
    if (deps.overload === undefined) return flow(who);
    const release = deps.overload.admit(who.client.id, method);
    try {
      return await flow(who);
    } finally {
      release();
    }
  }

  return defineService(TokenService, {
    issue: (req, ctx) => guarded(ctx, "Issue", (c) => issue(deps, c, req)),
    issueServiceToken: (req, ctx) =>
      guarded(ctx, "IssueServiceToken", (c) => issueServiceToken(deps, c, req)),
    refresh: (req, ctx) => guarded(ctx, "Refresh", (c) => refresh(deps, c, req)),
    revoke: async (req, ctx) => {
      const who = await caller(ctx, "Revoke");
      deps.revokeLimit?.admit(who.client.id, "Revoke");
      return revoke(deps, who, req);
    },
    introspect: (req, ctx) => guarded(ctx, "Introspect", (c) => introspect(deps, c, req)),
    listSessions: (req, ctx) => guarded(ctx, "ListSessions", (c) => listSessions(deps, c, req)),
    getJwks: async () => ({ keys: deps.keys.jwks().keys.map((k) => ({ ...k })) }),
    exchange: (req, ctx) =>
      guarded(ctx, "Exchange", async (c) => {
        const r = await exchangeToken(deps, c, req);
        return {
          accessToken: r.accessToken,
          issuedTokenType: r.issuedTokenType,
          tokenType: r.tokenType,
          accessTokenExpiresAt: timestampFromMs(r.expiresAt * 1000),
          scopes: r.scopes,
          audience: r.audience,
          actors: r.actors,
        };
      }),
  });
}
