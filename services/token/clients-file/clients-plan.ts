import { CLIENT_FILE_FIELDS, type ClientFileState } from "./client-file-fields.ts";
import type { DesiredClient } from "./clients-file.ts";

/** A registered client as `clients apply` compares it. */
export interface CurrentClient {
  id: string;
  settings: ClientFileState;
  disabled: boolean;
  disabledReason: string;
  hasSecret: boolean;
}

/**
 * The reason `--prune` disables with. A pruned client listed again is enabled again (unless the file
 * says `disabled: true`); one disabled for any other reason stays disabled until the file says
 * `disabled: false`, so re-applying a file never undoes an incident response.
 */
export const PRUNE_REASON = "pruned: not in the clients file";

export interface FieldChange {
  key: string;
  path: string;
  from: string;
  to: string;
}

export type ClientStep =
  | { kind: "create"; client: DesiredClient }
  | {
      kind: "update";
      client: DesiredClient;
      fields: FieldChange[];
      /** Enable or disable it after the fields (undefined: leave as is). */
      disable?: boolean;
      /** Whether it is disabled once applied: a disabled client's secret is left alone. */
      endsDisabled: boolean;
      /** The file says no_secret but the client has one, which no apply takes away. */
      keepsSecret: boolean;
    }
  /** Listed, equal settings; a file-named secret is still checked when applied. */
  | { kind: "unchanged"; client: DesiredClient; endsDisabled: boolean; keepsSecret: boolean }
  | { kind: "prune"; id: string }
  /** Registered, not listed, and left alone: no --prune, already disabled, or the caller itself. */
  | { kind: "unlisted"; id: string; why: string };

function show(value: unknown): string {
  if (Array.isArray(value)) return `[${value.join(", ")}]`;
  if (value === null) return "server default";
  return String(value);
}

function same(a: unknown, b: unknown): boolean {
  // Lists are sets to every rule that reads them: order is not a change.
  if (Array.isArray(a) && Array.isArray(b)) {
    return a.length === b.length && [...a].sort().join("\0") === [...b].sort().join("\0");
  }
  return a === b;
}

/** The settings fields whose stored value differs from the file's, in the table's order. */
export function changedFields(want: ClientFileState, have: ClientFileState): FieldChange[] {
  return CLIENT_FILE_FIELDS.filter((f) => !same(want[f.setting], have[f.setting])).map((f) => {
    const shown = f.show ?? show;
    return { key: f.key, path: f.path, from: shown(have[f.setting]), to: shown(want[f.setting]) };
  });
}

function wantDisabled(client: DesiredClient, have: CurrentClient): boolean | undefined {
  if (client.disabled !== undefined) return client.disabled === have.disabled ? undefined : client.disabled;
  return have.disabled && have.disabledReason === PRUNE_REASON ? false : undefined;
}

/** Why an unlisted client is left alone, or undefined when it is pruned. */
function keptBecause(have: CurrentClient, prune: boolean): string | undefined {
  if (have.disabled) return "disabled";
  if (!prune) return "kept: no --prune";
  // Pruning the last admin would lock every operator out of the AdminService (the caller first).
  if (have.settings.roles.includes("admin")) return "kept: an admin is never pruned";
  return undefined;
}

/**
 * What applying `desired` to `current` does, client by client: pure, so `--dry-run` prints exactly
 * what a real run would write.
 */
export function planClients(
  desired: readonly DesiredClient[],
  current: readonly CurrentClient[],
  options: { prune: boolean },
): ClientStep[] {
  const byId = new Map(current.map((c) => [c.id, c]));
  const steps: ClientStep[] = desired.map((client) => {
    const have = byId.get(client.id);
    if (!have) return { kind: "create", client };
    const fields = changedFields(client.settings, have.settings);
    const disable = wantDisabled(client, have);
    const endsDisabled = disable ?? have.disabled;
    const keepsSecret = client.request.noSecret === true && have.hasSecret;
    if (fields.length === 0 && disable === undefined) {
      return { kind: "unchanged", client, endsDisabled, keepsSecret };
    }
    return {
      kind: "update",
      client,
      fields,
      endsDisabled,
      keepsSecret,
      ...(disable === undefined ? {} : { disable }),
    };
  });
  const listed = new Set(desired.map((c) => c.id));
  for (const have of current) {
    if (listed.has(have.id)) continue;
    const why = keptBecause(have, options.prune);
    steps.push(why === undefined ? { kind: "prune", id: have.id } : { kind: "unlisted", id: have.id, why });
  }
  return steps;
}
