import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { PrismaClient } from "../gen/prisma/client.ts";
import { TokenService } from "../gen/proto/gatehouse/v1/token_service_pb.ts";
import type { CallContext } from "../shared/rpc/call-context.ts";
import { defineService, type ServiceRegistration } from "../shared/rpc/service-handlers.ts";
import { inChildSpan } from "../shared/tracing/rpc-spans.ts";
import type { CallerAuthenticator } from "./clients/caller-authenticator.ts";
import { type CallerGateDeps, createCallerGate } from "./clients/caller-gate.ts";
import type { TokenServiceMethod } from "./clients/caller-roles.ts";
import type { Caller, FlowDeps } from "./flows/flow-deps.ts";
import { introspect } from "./flows/introspect-flow.ts";
import { issue, issueServiceToken } from "./flows/issue-flow.ts";
import { listSessions } from "./flows/list-sessions-flow.ts";
import { refresh } from "./flows/refresh-flow.ts";
import { revoke } from "./flows/revoke-flow.ts";
import { exchangeToken } from "./flows/token-exchange-flow.ts";

export interface TokenServiceHandlerDeps extends FlowDeps, CallerGateDeps {
  prisma: PrismaClient;
  authenticator: CallerAuthenticator;
}

/**
 * TokenService over every protocol: authenticate the calling client (`authorization` or a client
 * assertion in `x-gatehouse-client-assertion`), check its role may call the method, then run the
 * flow (clients/caller-gate.ts). GetJwks is public, as a JWKS is. With tracing on, the caller's
 * authentication and the flow (its database work) are child spans of the call's span.
 */
export function tokenServiceHandlers(deps: TokenServiceHandlerDeps): ServiceRegistration {
  const gate = createCallerGate(deps);
  const run = <T>(ctx: CallContext, method: TokenServiceMethod, flow: (caller: Caller) => Promise<T>) =>
    gate(
      method,
      () =>
        inChildSpan(ctx.span, "authenticate caller", () =>
          deps.authenticator.authenticateRequest((name) => ctx.header(name)),
        ),
      ctx.requestId,
      (caller) => inChildSpan(ctx.span, `${method} flow`, () => flow(caller)),
    );

  return defineService(TokenService, {
    issue: (req, ctx) => run(ctx, "Issue", (c) => issue(deps, c, req)),
    issueServiceToken: (req, ctx) => run(ctx, "IssueServiceToken", (c) => issueServiceToken(deps, c, req)),
    refresh: (req, ctx) => run(ctx, "Refresh", (c) => refresh(deps, c, req)),
    revoke: (req, ctx) => run(ctx, "Revoke", (c) => revoke(deps, c, req)),
    introspect: (req, ctx) => run(ctx, "Introspect", (c) => introspect(deps, c, req)),
    listSessions: (req, ctx) => run(ctx, "ListSessions", (c) => listSessions(deps, c, req)),
    getJwks: async () => ({ keys: deps.keys.jwks().keys.map((k) => ({ ...k })) }),
    exchange: (req, ctx) =>
      run(ctx, "Exchange", async (c) => {
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
