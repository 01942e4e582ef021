import { readFile } from "node:fs/promises";
import type { Database } from "../../shared/database/index.ts";
import { GatehouseError } from "../../shared/errors/gatehouse-error.ts";
import type { AdminCaller } from "../admin/admin-deps.ts";
import type { ClientAdminDeps } from "../admin/client-admin.ts";
import { checkClientKeys } from "../admin/client-trust.ts";
import { type AppliedClient, type ApplyOptions, applyClients } from "./clients-apply.ts";
import { ClientsFileError, type DesiredClient, type ParseOptions, parseClientsFile } from "./clients-file.ts";
import { directClientAdmin, withClientsFileLock } from "./direct-client-admin.ts";

/** Reads and validates a clients file; any problem is one ClientsFileError line naming the file. */
export async function readClientsFile(
  path: string,
  options: Omit<ParseOptions, "path">,
): Promise<DesiredClient[]> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    throw new ClientsFileError(path, `cannot be read (${(err as NodeJS.ErrnoException).code ?? "error"})`);
  }
  const desired = parseClientsFile(text, { ...options, path });
  // The one check parsing cannot make: importing the keys, which is asynchronous.
  for (const client of desired) {
    try {
      await checkClientKeys(client.settings);
    } catch (err) {
      if (err instanceof GatehouseError)
        throw new ClientsFileError(path, `client ${client.id}: ${err.message}`);
      throw err;
    }
  }
  return desired;
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
    trustedIssuers: options.deps.trustedIssuers ?? [],
  });
  return withClientsFileLock(options.db, () =>
    applyClients(directClientAdmin(options.deps, options.caller), desired, options),
  );
}
