import { create } from "@bufbuild/protobuf";
import {
  CreateClientRequestSchema,
  RotateClientSecretRequestSchema,
  UpdateClientRequestSchema,
} from "../../gen/proto/gatehouse/v1/admin_service_pb.ts";
import type { Database } from "../../shared/database/index.ts";
import type { AdminCaller } from "../admin/admin-deps.ts";
import {
  type ClientAdminDeps,
  createClient,
  disableClient,
  enableClient,
  rotateClientSecret,
  updateClient,
} from "../admin/client-admin.ts";
import { settingsOf } from "../admin/client-settings.ts";
import { trustOf } from "../admin/client-trust.ts";
import { clientsFileLock } from "../sql/clients.ts";
import { poolTransactions } from "../store/sql-transaction.ts";
import { trustState } from "./client-file-fields.ts";
import type { ClientAdminPort } from "./clients-apply.ts";

/** `clients apply` straight on the database, through the same handlers the AdminService runs. */
export function directClientAdmin(deps: ClientAdminDeps, caller: AdminCaller): ClientAdminPort {
  return {
    async list() {
      const rows = await deps.prisma.client.findMany({ orderBy: { id: "asc" } });
      return rows.map((row) => ({
        id: row.id,
        settings: { ...settingsOf(row), ...trustState(trustOf(row)) },
        disabled: row.disabledAt !== null,
        disabledReason: row.disabledReason ?? "",
        hasSecret: row.secretHash !== null,
      }));
    },
    async create(request, secret) {
      const res = await createClient(deps, caller, create(CreateClientRequestSchema, request), secret);
      return res.clientSecret ?? "";
    },
    async update(clientId, request, paths) {
      await updateClient(
        deps,
        caller,
        create(UpdateClientRequestSchema, { ...request, clientId, updateMask: { paths } }),
      );
    },
    async disable(clientId, reason) {
      await disableClient(deps, caller, { clientId, reason } as Parameters<typeof disableClient>[2]);
    },
    async enable(clientId) {
      await enableClient(deps, caller, { clientId } as Parameters<typeof enableClient>[2]);
    },
    async adoptSecret(clientId, secret, options) {
      const res = await rotateClientSecret(
        deps,
        caller,
        create(RotateClientSecretRequestSchema, {
          clientId,
          clientSecret: secret,
          validateOnly: options.dryRun,
        }),
      );
      return res.rotated === true;
    },
  };
}

/**
 * Runs `fn` holding the clients-file advisory lock (per schema), so replicas starting together with
 * the same GATEHOUSE_CLIENTS_FILE apply it one after another: the later ones find it applied and
 * write nothing. `fn` runs many transactions of its own, so the lock is held by a transaction left
 * open on a connection of its own until `fn` ends: transaction-scoped, so a transaction pooler keeps
 * it on one server connection and it cannot outlive the apply. PGlite is one connection in one
 * process: nothing to serialize against.
 */
export async function withClientsFileLock<T>(db: Pick<Database, "pool">, fn: () => Promise<T>): Promise<T> {
  if (!db.pool) return fn();
  return poolTransactions(db.pool).transaction(async (tx) => {
    await tx.query(clientsFileLock, []);
    return fn();
  });
}
