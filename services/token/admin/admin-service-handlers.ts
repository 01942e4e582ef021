import { AdminService } from "../../gen/proto/gatehouse/v1/admin_service_pb.ts";
import { GatehouseError } from "../../shared/errors/gatehouse-error.ts";
import type { CallContext } from "../../shared/rpc/call-context.ts";
import { defineService, type ServiceRegistration } from "../../shared/rpc/service-handlers.ts";
import type { AuditAction } from "../audit/audit-actions.ts";
import { type AuditOutcomeWord, clientActor, recordAudit } from "../audit/audit-record.ts";
import type { AdminCaller, AdminDeps } from "./admin-deps.ts";
import { listAuditEvents } from "./audit-admin.ts";
import {
  createClient,
  disableClient,
  enableClient,
  getClient,
  listClients,
  rotateClientSecret,
  updateClient,
} from "./client-admin.ts";
import {
  activateSigningKey,
  createSigningKey,
  listSigningKeys,
  retireSigningKey,
  revokeSigningKey,
  rotateSigningKeys,
} from "./signing-key-admin.ts";

/** Client ids and key ids as they can exist: short printable ASCII. */
const SANE_TARGET = /^[\x21-\x7e]{1,128}$/;

interface ActionSpec {
  action: AuditAction;
  targetType: "client" | "signing_key" | "audit";
  /** Changes something: its failures are audited too (denials always are). */
  mutates: boolean;
}

const client = (action: Extract<AuditAction, `client.${string}`>, mutates = true): ActionSpec => ({
  action,
  targetType: "client",
  mutates,
});
const key = (action: Extract<AuditAction, `signing_key.${string}`>, mutates = true): ActionSpec => ({
  action,
  targetType: "signing_key",
  mutates,
});

/**
 * AdminService over every protocol. Every RPC needs an authenticated caller with the admin role;
 * a refusal is audited as `denied`, a failed change as `failed`. Successful changes write their own
 * audit row in the transaction that makes them.
 */
export function adminServiceHandlers(deps: AdminDeps): ServiceRegistration {
  async function auditRefusal(
    caller: AdminCaller,
    spec: ActionSpec,
    req: object,
    outcome: AuditOutcomeWord,
    err: unknown,
  ): Promise<void> {
    const named = (req as { clientId?: string; kid?: string }).clientId || (req as { kid?: string }).kid;
    // The target comes from a request that was refused, maybe for being garbage: one Postgres cannot
    // store (a NUL) or that is huge would lose the audit row, so only a sane one is recorded.
    const target = named !== undefined && SANE_TARGET.test(named) ? named : undefined;
    try {
      await recordAudit(deps.prisma, {
        ...caller.by,
        at: new Date(deps.now()),
        action: spec.action,
        targetType: spec.targetType,
        targetId: target || undefined,
        clientId: spec.targetType === "client" ? target || undefined : undefined,
        outcome,
        details: {
          reason: GatehouseError.from(err).code,
          ...(named && target === undefined ? { target: "not recorded: not a valid id" } : {}),
        },
      });
    } catch (auditErr) {
      deps.log.error(
        { err: (auditErr as Error).message, action: spec.action },
        "writing an audit event failed",
      );
    }
  }

  function admin<Req extends object, Res>(
    spec: ActionSpec,
    run: (caller: AdminCaller, req: Req) => Promise<Res>,
  ): (req: Req, ctx: CallContext) => Promise<Res> {
    return async (req, ctx) => {
      const who = await deps.authenticator.authenticateRequest((name) => ctx.header(name));
      const caller: AdminCaller = {
        clientId: who.id,
        requestId: ctx.requestId,
        by: clientActor(who.id, ctx.requestId),
      };
      if (!who.roles.includes("admin")) {
        const err = new GatehouseError("unauthorized_client", `client ${who.id} may not call AdminService`, {
          metadata: { method: ctx.method },
        });
        await auditRefusal(caller, spec, req, "denied", err);
        throw err;
      }
      try {
        return await run(caller, req);
      } catch (err) {
        if (spec.mutates) await auditRefusal(caller, spec, req, "failed", err);
        throw err;
      }
    };
  }

  return defineService(AdminService, {
    createClient: admin(client("client.create"), (c, req) => createClient(deps, c, req)),
    getClient: admin(client("client.get", false), (_c, req) => getClient(deps, req)),
    listClients: admin(client("client.list", false), (_c, req) => listClients(deps, req)),
    updateClient: admin(client("client.update"), (c, req) => updateClient(deps, c, req)),
    rotateClientSecret: admin(client("client.rotate_secret"), (c, req) => rotateClientSecret(deps, c, req)),
    disableClient: admin(client("client.disable"), (c, req) => disableClient(deps, c, req)),
    enableClient: admin(client("client.enable"), (c, req) => enableClient(deps, c, req)),
    createSigningKey: admin(key("signing_key.create"), (c, req) => createSigningKey(deps, c, req)),
    activateSigningKey: admin(key("signing_key.activate"), (c, req) => activateSigningKey(deps, c, req)),
    retireSigningKey: admin(key("signing_key.retire"), (c, req) => retireSigningKey(deps, c, req)),
    revokeSigningKey: admin(key("signing_key.revoke"), (c, req) => revokeSigningKey(deps, c, req)),
    listSigningKeys: admin(key("signing_key.list", false), (_c, req) => listSigningKeys(deps, req)),
    rotateSigningKeys: admin(key("signing_key.rotate"), (c, req) => rotateSigningKeys(deps, c, req)),
    listAuditEvents: admin({ action: "audit.list", targetType: "audit", mutates: false }, (_c, req) =>
      listAuditEvents(deps, req),
    ),
  });
}
