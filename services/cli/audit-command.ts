import { type Timestamp, timestampFromMs } from "@bufbuild/protobuf/wkt";
import {
  AdminService,
  type AuditEvent,
  AuditOutcome,
  ListAuditEventsResponseSchema,
} from "../gen/proto/gatehouse/v1/admin_service_pb.ts";
import { types } from "../shared/settings/index.ts";
import { table, when } from "./cli-output.ts";
import { EXIT_OK, parseFlags, UsageError } from "./command.ts";
import { commandGroup, positionalArgs, type Subcommand } from "./command-group.ts";
import { collectPages, PAGING_FLAGS, pageSize, pagingUsage, printListing } from "./paged-listing.ts";
import { CONNECTION_FLAGS, CONNECTION_USAGE, withConnection } from "./rpc-connection.ts";

/** An instant: ISO 8601 ("2026-11-23T12:00:00Z"), or a duration meaning that long ago ("1h", "7d"). */
export function instantFlag(flag: string, value: string, now = Date.now()): Timestamp {
  const ago = types.duration().safeParse(value);
  if (ago.success) return timestampFromMs(now - ago.data);
  const t = Date.parse(value);
  if (Number.isNaN(t))
    throw new UsageError(`--${flag}: expected an ISO 8601 time or a duration ago such as 1h`);
  return timestampFromMs(t);
}

function outcomeName(o: AuditOutcome): string {
  return o === AuditOutcome.FAILURE ? "failed" : (AuditOutcome[o] ?? "unknown").toLowerCase();
}

export function auditTable(events: readonly AuditEvent[]): string {
  return table(
    ["TIME", "ACTOR", "ACTION", "TARGET", "OUTCOME", "REQUEST ID"],
    events.map((e) => [
      when(e.occurredAt),
      e.actor,
      e.action,
      e.targetId ? `${e.targetType}:${e.targetId}` : e.targetType,
      outcomeName(e.outcome),
      e.requestId,
    ]),
  );
}

const list: Subcommand = {
  name: "list",
  summary: "List audit events, newest first",
  usage: `Usage: gatehouse audit list [filters] [--limit N] [--all] [--json]

Every filter given must match. Times are ISO 8601 or a duration ago (30m, 1h, 7d).

  --subject SUBJECT     events about this end user
  --client ID           events about this client
  --action ACTION       this action (client.disable), or a group ending in "." (client.)
  --actor ACTOR         events by this actor (client:ops-console, system:key-rotation)
  --since TIME          at or after this time
  --until TIME          before this time
${pagingUsage("events")}
  --json                print the response as JSON

${CONNECTION_USAGE}`,
  async run(argv) {
    const { values, positionals } = parseFlags(argv, {
      ...CONNECTION_FLAGS,
      ...PAGING_FLAGS,
      json: { type: "boolean" },
      subject: { type: "string" },
      client: { type: "string" },
      action: { type: "string" },
      actor: { type: "string" },
      since: { type: "string" },
      until: { type: "string" },
    });
    positionalArgs(positionals, []);
    const size = pageSize(values);
    const filters = {
      subject: values.subject ?? "",
      clientId: values.client ?? "",
      action: values.action ?? "",
      actor: values.actor ?? "",
      ...(values.since ? { since: instantFlag("since", values.since) } : {}),
      ...(values.until ? { until: instantFlag("until", values.until) } : {}),
      pageSize: size,
    };
    const { items: events, nextPageToken } = await withConnection(AdminService, values, (c) =>
      collectPages(values, async (pageToken) => {
        const page = await c.call("listAuditEvents", { ...filters, pageToken });
        return { items: page.events, nextPageToken: page.nextPageToken };
      }),
    );
    printListing(values.json, {
      schema: ListAuditEventsResponseSchema,
      response: { events, nextPageToken },
      table: auditTable(events),
      noun: "events",
      nextPageToken,
    });
    return EXIT_OK;
  },
};

export const auditCommand = commandGroup("audit", "Read the audit log", [list]);
