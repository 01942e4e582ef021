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

export interface TokenServiceHandlerDeps extends FlowDeps {
  prisma: PrismaClient;
  authenticator: CallerAuthenticator;
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

  return defineService(TokenService, {
    issue: async (req, ctx) => issue(deps, await caller(ctx, "Issue"), req),
    issueServiceToken: async (req, ctx) =>
      issueServiceToken(deps, await caller(ctx, "IssueServiceToken"), req),
    refresh: async (req, ctx) => refresh(deps, await caller(ctx, "Refresh"), req),
    revoke: async (req, ctx) => revoke(deps, await caller(ctx, "Revoke"), req),
    introspect: async (req, ctx) => introspect(deps, await caller(ctx, "Introspect"), req),
    listSessions: async (req, ctx) => listSessions(deps, await caller(ctx, "ListSessions"), req),
    getJwks: async () => ({ keys: deps.keys.jwks().keys.map((k) => ({ ...k })) }),
  });
}
