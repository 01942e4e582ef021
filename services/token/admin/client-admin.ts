import type { DescMessage, MessageInitShape } from "@bufbuild/protobuf";
import { durationMs, timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { Client as ClientRow, Prisma } from "../../gen/prisma/client.ts";
import type {
  CreateClientRequest,
  CreateClientResponseSchema,
  DisableClientRequest,
  DisableClientResponseSchema,
  EnableClientRequest,
  EnableClientResponseSchema,
  GetClientRequest,
  GetClientResponseSchema,
  ListClientsRequest,
  ListClientsResponseSchema,
  RotateClientSecretRequest,
  RotateClientSecretResponseSchema,
  UpdateClientRequest,
  UpdateClientResponseSchema,
} from "../../gen/proto/gatehouse/v1/admin_service_pb.ts";
import { sqlScopeOf } from "../../shared/database/sql-scope.ts";
import { GatehouseError } from "../../shared/errors/gatehouse-error.ts";
import type { AuditAction } from "../audit/audit-actions.ts";
import { recordAudit } from "../audit/audit-record.ts";
import { generateClientSecret, hashClientSecret, verifyClientSecret } from "../clients/client-secret.ts";
import { disableCutOffMs } from "../clients/disable-cut-off.ts";
import { checkText, LIMITS } from "../flows/request-limits.ts";
import { disableClient as disableClientStatement, lockClientRow } from "../sql/clients.ts";
import { prismaQuery } from "../store/prisma-sql.ts";
import type { AdminCaller, AdminDeps } from "./admin-deps.ts";
import { clientMessage, ROLE_BY_ENUM } from "./admin-messages.ts";
import {
  checkChosenSecret,
  checkClientId,
  generateClientId,
  settingsForCreate,
  settingsForUpdate,
  settingsOf,
} from "./client-settings.ts";
import {
  checkClientKeys,
  checkNoSecret,
  hasTrustSource,
  trustForCreate,
  trustForUpdate,
  trustOf,
} from "./client-trust.ts";
import { decodePageToken, encodePageToken, pageSize } from "./page-cursor.ts";

type Reply<S extends DescMessage> = Promise<MessageInitShape<S>>;

/** What the client handlers use of AdminDeps (`clients apply --direct` builds just this). */
export type ClientAdminDeps = Pick<
  AdminDeps,
  "prisma" | "now" | "maxAccessTokenTtlSeconds" | "publish" | "log" | "trustedIssuers"
> & {
  authenticator: Pick<AdminDeps["authenticator"], "forget">;
};

const DEFAULT_OVERLAP_MS = 24 * 3_600_000;
const MAX_OVERLAP_MS = 7 * 86_400_000;

function notFound(clientId: string): GatehouseError {
  return new GatehouseError("not_found", `no client ${clientId}`, { metadata: { client_id: clientId } });
}

async function findOrThrow(
  db: Pick<Prisma.TransactionClient, "client">,
  clientId: string,
): Promise<ClientRow> {
  // Looked up as given: rows written before the id rules (or by hand) must stay reachable.
  const row = await db.client.findUnique({
    where: { id: checkText("client_id", clientId, 128, { required: true }) },
  });
  if (!row) throw notFound(clientId);
  return row;
}

function isUniqueViolation(err: unknown): boolean {
  return typeof err === "object" && err !== null && (err as { code?: unknown }).code === "P2002";
}

const audit = (caller: AdminCaller, at: Date, action: AuditAction, clientId: string, details: object) => ({
  ...caller.by,
  at,
  action,
  targetType: "client",
  targetId: clientId,
  clientId,
  outcome: "success" as const,
  details: details as Record<string, unknown>,
});

/** A unique violation on create or update: the id, or the federated identity another client has. */
function taken(err: unknown, id: string): unknown {
  if (!isUniqueViolation(err)) return err;
  // The driver adapter names the index in meta.driverAdapterError; Prisma's own engine in meta.target.
  if (JSON.stringify((err as { meta?: unknown }).meta ?? {}).includes("federated")) {
    return new GatehouseError(
      "already_exists",
      "another client is registered for this federated_issuer and federated_subject",
      { metadata: { field: "federated_subject" } },
    );
  }
  return new GatehouseError("already_exists", `client ${id} already exists`, { metadata: { client_id: id } });
}

export async function createClient(
  deps: Pick<AdminDeps, "prisma" | "now" | "maxAccessTokenTtlSeconds" | "trustedIssuers">,
  caller: AdminCaller,
  req: CreateClientRequest,
  /** A secret the operator chose (a clients file's `secret_from_env`); default: a generated one. */
  chosenSecret?: string,
): Reply<typeof CreateClientResponseSchema> {
  const id = req.clientId === "" ? generateClientId() : checkClientId(req.clientId);
  const settings = settingsForCreate(req, deps.maxAccessTokenTtlSeconds);
  const trust = trustForCreate(req, deps.trustedIssuers ?? []);
  await checkClientKeys(trust);
  checkNoSecret(req.noSecret, trust);
  const secret = req.noSecret
    ? ""
    : chosenSecret === undefined
      ? generateClientSecret()
      : checkChosenSecret(chosenSecret);
  const secretHash = req.noSecret ? null : await hashClientSecret(secret);
  const at = new Date(deps.now());
  try {
    const row = await deps.prisma.$transaction(async (tx) => {
      const created = await tx.client.create({
        data: {
          id,
          ...settings,
          ...trust,
          secretHash,
          secretRotatedAt: req.noSecret ? null : at,
          createdAt: at,
          updatedAt: at,
        },
      });
      await recordAudit(
        tx,
        audit(caller, at, "client.create", id, {
          roles: settings.roles,
          generated_id: req.clientId === "",
          has_secret: !req.noSecret,
          ...(trust.federatedIssuer === null ? {} : { federated_subject: trust.federatedSubject }),
        }),
      );
      return created;
    });
    return { client: clientMessage(row), clientSecret: chosenSecret === undefined ? secret : "" };
  } catch (err) {
    throw taken(err, id);
  }
}

export async function getClient(
  deps: Pick<AdminDeps, "prisma">,
  req: GetClientRequest,
): Reply<typeof GetClientResponseSchema> {
  return { client: clientMessage(await findOrThrow(deps.prisma, req.clientId)) };
}

/** A page token's position: the id of the last client returned. */
export const CLIENT_CURSOR = ["text"] as const;

export async function listClients(
  deps: Pick<AdminDeps, "prisma">,
  req: ListClientsRequest,
): Reply<typeof ListClientsResponseSchema> {
  const role = req.role === 0 ? null : ROLE_BY_ENUM.get(req.role);
  if (role === undefined) {
    throw new GatehouseError("invalid_request", `role has an unknown value (${req.role})`, {
      metadata: { field: "role" },
    });
  }
  const namePrefix = checkText("name_prefix", req.namePrefix, 128);
  const filters = [role, req.includeDisabled, namePrefix.toLowerCase()];
  const take = pageSize(req.pageSize);
  const after = req.pageToken === "" ? null : decodePageToken(req.pageToken, filters, CLIENT_CURSOR)[0];
  const rows = await deps.prisma.client.findMany({
    where: {
      ...(role ? { roles: { has: role } } : {}),
      ...(req.includeDisabled ? {} : { disabledAt: null }),
      ...(namePrefix ? { name: { startsWith: namePrefix, mode: "insensitive" as const } } : {}),
      ...(after !== null ? { id: { gt: after } } : {}),
    },
    orderBy: { id: "asc" },
    take: take + 1,
  });
  const page = rows.slice(0, take);
  const last = page[page.length - 1];
  return {
    clients: page.map(clientMessage),
    nextPageToken: rows.length > take && last ? encodePageToken([last.id], filters) : "",
  };
}

export async function updateClient(
  deps: ClientAdminDeps,
  caller: AdminCaller,
  req: UpdateClientRequest,
): Reply<typeof UpdateClientResponseSchema> {
  const row = await deps.prisma
    .$transaction(async (tx) => {
      const current = await findOrThrow(tx, req.clientId);
      const { settings, changed } = settingsForUpdate(
        settingsOf(current),
        req,
        deps.maxAccessTokenTtlSeconds,
      );
      const trust = trustForUpdate(trustOf(current), req, deps.trustedIssuers ?? []);
      await checkClientKeys(trust);
      if (current.secretHash === null && !hasTrustSource(trust)) {
        throw new GatehouseError(
          "invalid_request",
          `client ${current.id} has no secret: it needs a trust source (jwks, jwks_uri or federated_issuer)`,
          { metadata: { field: "update_mask" } },
        );
      }
      const at = new Date(deps.now());
      const updated = await tx.client.update({
        where: { id: current.id },
        data: { ...settings, ...trust, updatedAt: at },
      });
      await recordAudit(tx, audit(caller, at, "client.update", current.id, { fields: changed }));
      return updated;
    })
    .catch((err: unknown) => {
      throw taken(err, req.clientId);
    });
  deps.authenticator.forget(row.id);
  return { client: clientMessage(row) };
}

export async function rotateClientSecret(
  deps: ClientAdminDeps,
  caller: AdminCaller,
  req: RotateClientSecretRequest,
): Reply<typeof RotateClientSecretResponseSchema> {
  const overlapMs =
    req.previousSecretOverlap === undefined ? DEFAULT_OVERLAP_MS : durationMs(req.previousSecretOverlap);
  if (!(overlapMs >= 0 && overlapMs <= MAX_OVERLAP_MS)) {
    throw new GatehouseError("invalid_request", "previous_secret_overlap must be between 0 and 7 days", {
      metadata: { field: "previous_secret_overlap" },
    });
  }
  const chosen = req.clientSecret === "" ? undefined : checkChosenSecret(req.clientSecret);
  if (chosen === undefined && req.validateOnly) {
    throw new GatehouseError("invalid_request", "validate_only needs client_secret", {
      metadata: { field: "validate_only" },
    });
  }
  // A chosen secret that already is the client's changes nothing: a clients file applied again (or
  // by several replicas at once) writes and audits nothing.
  const isCurrent = async (row: ClientRow) =>
    chosen !== undefined && row.secretHash !== null && (await verifyClientSecret(chosen, row.secretHash));
  const before = await findOrThrow(deps.prisma, req.clientId);
  const same = await isCurrent(before);
  if (same || req.validateOnly) return { clientSecret: "", rotated: !same, client: clientMessage(before) };
  const secret = chosen ?? generateClientSecret();
  const secretHash = await hashClientSecret(secret);
  const row = await deps.prisma.$transaction(async (tx) => {
    await prismaQuery(tx, sqlScopeOf(deps.prisma), lockClientRow, before.id);
    const current = await findOrThrow(tx, before.id);
    if (await isCurrent(current)) return undefined;
    if (current.disabledAt !== null) {
      throw new GatehouseError("failed_precondition", `client ${current.id} is disabled: enable it first`, {
        metadata: { client_id: current.id },
      });
    }
    const t = deps.now();
    const at = new Date(t);
    const expires = new Date(t + overlapMs);
    const updated = await tx.client.update({
      where: { id: current.id },
      data: {
        secretHash,
        // Only one previous secret is kept: rotating again ends the older one at once.
        previousSecretHash: overlapMs > 0 ? current.secretHash : null,
        previousSecretExpiresAt: expires,
        secretRotatedAt: at,
        updatedAt: at,
      },
    });
    await recordAudit(
      tx,
      audit(caller, at, "client.rotate_secret", current.id, {
        overlap_seconds: Math.floor(overlapMs / 1000),
        chosen_secret: chosen !== undefined,
      }),
    );
    return updated;
  });
  if (row === undefined) {
    return {
      clientSecret: "",
      rotated: false,
      client: clientMessage(await findOrThrow(deps.prisma, before.id)),
    };
  }
  // A cached (client, old secret) pair must not outlive the overlap, least of all a zero one.
  deps.authenticator.forget(row.id);
  return {
    clientSecret: chosen === undefined ? secret : "",
    rotated: true,
    previousSecretExpiresAt: timestampFromDate(row.previousSecretExpiresAt!),
    client: clientMessage(row),
  };
}

export async function disableClient(
  deps: ClientAdminDeps,
  caller: AdminCaller,
  req: DisableClientRequest,
): Reply<typeof DisableClientResponseSchema> {
  const clientId = checkText("client_id", req.clientId, 128, { required: true });
  const reason = checkText("reason", req.reason, LIMITS.reason) || "disabled by admin";
  if (clientId === caller.clientId) {
    throw new GatehouseError("failed_precondition", "an admin cannot disable its own client", {
      metadata: { client_id: clientId },
    });
  }
  await findOrThrow(deps.prisma, clientId);
  const t = deps.now();
  const notBefore = disableCutOffMs(t);
  const [result] = await prismaQuery(
    deps.prisma,
    sqlScopeOf(deps.prisma),
    disableClientStatement,
    clientId,
    new Date(t),
    reason,
    BigInt(notBefore),
    new Date(notBefore + deps.maxAccessTokenTtlSeconds * 1000),
    caller.by.actor,
    caller.by.requestId ?? null,
  );
  deps.authenticator.forget(clientId);
  const eventId = result?.event_id ?? null;
  const propagated = eventId === null ? true : await deps.publish([eventId]).catch(() => false);
  deps.log.info(
    { requestId: caller.requestId, clientId, sessionsRevoked: result?.sessions_revoked ?? 0, propagated },
    "client disabled",
  );
  return {
    sessionsRevoked: result?.sessions_revoked ?? 0,
    propagated,
    client: clientMessage(await findOrThrow(deps.prisma, clientId)),
  };
}

export async function enableClient(
  deps: ClientAdminDeps,
  caller: AdminCaller,
  req: EnableClientRequest,
): Reply<typeof EnableClientResponseSchema> {
  const seen = await findOrThrow(deps.prisma, req.clientId);
  // Sidecars refuse the client's tokens issued before the disable's cut-off, for their whole life.
  // Enabled earlier, Issue would answer 200 with tokens no sidecar accepts; so the client stays
  // disabled until the cut-off has passed (at most CLIENT_CHANGE_BOUND_MS and a second after the
  // disable), and every token issued once this returns is issued after it.
  if (seen.disabledAt !== null) {
    const waitMs = disableCutOffMs(seen.disabledAt.getTime()) - deps.now();
    if (waitMs > 0) await new Promise((resolve) => setTimeout(resolve, waitMs));
  }
  const row = await deps.prisma.$transaction(async (tx) => {
    const current = await findOrThrow(tx, seen.id);
    if (current.disabledAt?.getTime() !== seen.disabledAt?.getTime()) {
      throw new GatehouseError("failed_precondition", "the client was disabled again meanwhile; retry", {
        metadata: { client_id: seen.id },
      });
    }
    const at = new Date(deps.now());
    const changed = current.disabledAt !== null;
    const updated = changed
      ? await tx.client.update({
          where: { id: current.id },
          data: { disabledAt: null, disabledReason: null, updatedAt: at },
        })
      : current;
    await recordAudit(tx, audit(caller, at, "client.enable", current.id, { changed }));
    return updated;
  });
  // Refusals of its secret while it was disabled are cached: they must not outlive the enable.
  deps.authenticator.forget(row.id);
  return { client: clientMessage(row) };
}
