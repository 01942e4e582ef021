import type { ClientRequestFields } from "./client-file-fields.ts";
import type { DesiredClient } from "./clients-file.ts";
import {
  type ClientStep,
  type CurrentClient,
  changedFields,
  PRUNE_REASON,
  planClients,
} from "./clients-plan.ts";

/**
 * How `clients apply` reads and changes clients: over the AdminService (the CLI's --server) or
 * straight through client-admin.ts (--direct, and GATEHOUSE_CLIENTS_FILE at start). Both end in
 * the same handlers, so validation and audit events are the same either way.
 */
export interface ClientAdminPort {
  /** Every client, disabled ones included. */
  list(): Promise<CurrentClient[]>;
  /** Creates the client; the secret is the one given, or a generated one. Returns the secret. */
  create(request: DesiredClient["request"], secret: string | undefined): Promise<string>;
  update(clientId: string, request: ClientRequestFields, paths: string[]): Promise<void>;
  disable(clientId: string, reason: string): Promise<void>;
  enable(clientId: string): Promise<void>;
  /**
   * Makes `secret` the client's secret unless it already is (checked against the stored hash in
   * constant time); true when it rotated. With `dryRun`, only says whether it would.
   */
  adoptSecret(clientId: string, secret: string, options: { dryRun: boolean }): Promise<boolean>;
}

export interface ApplyOptions {
  prune: boolean;
  dryRun: boolean;
}

/** One line of the report per client; `secret` only for a client created without a file-named one. */
export interface AppliedClient {
  id: string;
  kind: ClientStep["kind"];
  lines: string[];
  secret?: string;
}

export async function applyClients(
  port: ClientAdminPort,
  desired: readonly DesiredClient[],
  options: ApplyOptions,
): Promise<AppliedClient[]> {
  const steps = planClients(desired, await port.list(), options);
  const out: AppliedClient[] = [];
  for (const step of steps) out.push(await applyStep(port, step, options.dryRun));
  return out;
}

/** A new client's trust sources, as its diff against nothing would show them. */
function trustLines(client: DesiredClient): string[] {
  const none = { jwks: null, jwksUri: null, federatedIssuer: null, federatedSubject: null };
  return changedFields(client.settings, { ...client.settings, ...none }).map((f) => `${f.key}: ${f.to}`);
}

async function applyStep(port: ClientAdminPort, step: ClientStep, dryRun: boolean): Promise<AppliedClient> {
  switch (step.kind) {
    case "create": {
      const { client } = step;
      const lines = client.secret ? [`secret: from $${client.secret.variable}`] : [];
      if (client.request.noSecret) lines.push("secret: none (no_secret)");
      lines.push(...trustLines(client));
      if (client.disabled) lines.push("disabled: true");
      if (dryRun) return { id: client.id, kind: "create", lines };
      const secret = await port.create(client.request, client.secret?.value);
      if (client.disabled) await port.disable(client.id, "disabled by the clients file");
      const printed = client.secret || client.request.noSecret ? {} : { secret };
      return { id: client.id, kind: "create", lines, ...printed };
    }
    case "update":
    case "unchanged": {
      const { client } = step;
      const lines: string[] = [];
      let kind: ClientStep["kind"] = step.kind;
      if (step.kind === "update") {
        lines.push(...step.fields.map((f) => `${f.key}: ${f.from} → ${f.to}`));
        if (step.disable !== undefined) lines.push(`disabled: ${!step.disable} → ${step.disable}`);
      }
      if (!dryRun && step.kind === "update") {
        // Disable first and enable last: a failure half-way leaves the client disabled rather than
        // enabled with settings the file never asked for.
        if (step.disable === true) await port.disable(client.id, "disabled by the clients file");
        if (step.fields.length > 0) {
          await port.update(
            client.id,
            client.request,
            step.fields.map((f) => f.path),
          );
        }
        if (step.disable === false) await port.enable(client.id);
      }
      // Said, not silently ignored: the operator may believe the secret no longer works.
      if (step.keepsSecret) lines.push("secret: kept (no_secret applies only when a client is created)");
      if (client.secret && step.endsDisabled) lines.push("secret: not checked while disabled");
      else if (client.secret && (await port.adoptSecret(client.id, client.secret.value, { dryRun }))) {
        lines.push(`secret: rotated to $${client.secret.variable}`);
        kind = "update";
      }
      return { id: client.id, kind, lines };
    }
    case "prune":
      if (!dryRun) await port.disable(step.id, PRUNE_REASON);
      return { id: step.id, kind: "prune", lines: ["disabled: false → true (not in the file)"] };
    case "unlisted":
      return { id: step.id, kind: "unlisted", lines: [step.why] };
  }
}

/** The report as people read it: one header line per client, its changes indented under it. */
export function describeApplied(results: readonly AppliedClient[], dryRun: boolean): string {
  const verb: Record<ClientStep["kind"], string> = {
    create: dryRun ? "would create" : "created",
    update: dryRun ? "would update" : "updated",
    unchanged: "unchanged",
    prune: dryRun ? "would prune" : "pruned",
    unlisted: "not in the file",
  };
  return results
    .map((r) => [`${verb[r.kind]} ${r.id}`, ...r.lines.map((l) => `  ${l}`)].join("\n"))
    .join("\n");
}
