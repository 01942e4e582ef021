import { randomUUID } from "node:crypto";
import type { Database } from "../../shared/database/index.ts";
import type { ClientAdminDeps } from "../admin/client-admin.ts";
import { applyClientsFileDirect } from "./apply-clients-file.ts";

/** The audit actor of changes GATEHOUSE_CLIENTS_FILE makes. */
const CLIENTS_FILE_ACTOR = "system:clients-file";

/**
 * GATEHOUSE_CLIENTS_FILE: applied once before the service listens, never pruning (a replica of an
 * older release restarting with its older file must not disable clients a newer file added; prune
 * from a Job). Throws on an invalid file or a failed apply, so the service does not start.
 */
export async function applyClientsFileAtStart(options: {
  path: string;
  env: Record<string, string | undefined>;
  db: Pick<Database, "pool">;
  deps: ClientAdminDeps;
}): Promise<void> {
  const requestId = randomUUID();
  const results = await applyClientsFileDirect({
    ...options,
    prune: false,
    dryRun: false,
    caller: { clientId: "", requestId, by: { actor: CLIENTS_FILE_ACTOR, requestId } },
  });
  const log = options.deps.log;
  for (const r of results) {
    if (r.kind === "unchanged" || r.kind === "unlisted") continue;
    log.info({ clientId: r.id, change: r.kind, details: r.lines }, "clients file applied to a client");
    // Never logged: a secret nobody was shown is a secret nobody has.
    if (r.secret) {
      log.warn(
        { clientId: r.id },
        "client created with a generated secret nobody has: give it secret_from_env or run `gatehouse clients rotate-secret`",
      );
    }
  }
  log.info({ path: options.path, clients: results.length }, "clients file applied");
}
