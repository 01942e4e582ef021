import { readFile } from "node:fs/promises";
import type { Database } from "../../shared/database/index.ts";
import type { AdminCaller } from "../admin/admin-deps.ts";
import type { ClientAdminDeps } from "../admin/client-admin.ts";
import { type AppliedClient, type ApplyOptions, applyClients } from "./clients-apply.ts";
import { ClientsFileError, type DesiredClient, parseClientsFile } from "./clients-file.ts";
import { directClientAdmin, withClientsFileLock } from "./direct-client-admin.ts";

/** Reads and validates a clients file; any problem is one ClientsFileError line naming the file. */
export async function readClientsFile(
  path: string,
  options: { env: Record<string, string | undefined>; maxAccessTokenTtlSeconds: number },
): Promise<DesiredClient[]> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    throw new ClientsFileError(path, `cannot be read (${(err as NodeJS.ErrnoException).code ?? "error"})`);
  }
  return parseClientsFile(text, { ...options, path });
}

/**
 * Applies a clients file straight on the database (`clients apply --direct`, GATEHOUSE_CLIENTS_FILE
 * at start), holding the clients-file lock so concurrent appliers take turns.
 */
export async function applyClientsFileDirect(
  options: ApplyOptions & {
    path: string;
    env: Record<string, string | undefined>;
    db: Pick<Database, "pool">;
    deps: ClientAdminDeps;
    caller: AdminCaller;
  },
): Promise<AppliedClient[]> {
  const desired = await readClientsFile(options.path, {
    env: options.env,
    maxAccessTokenTtlSeconds: options.deps.maxAccessTokenTtlSeconds,
  });
  return withClientsFileLock(options.db, () =>
    applyClients(directClientAdmin(options.deps, options.caller), desired, options),
  );
}
