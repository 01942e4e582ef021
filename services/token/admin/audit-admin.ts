import type { DescMessage, MessageInitShape } from "@bufbuild/protobuf";
import { type Timestamp, timestampDate } from "@bufbuild/protobuf/wkt";
import type { Prisma } from "../../gen/prisma/client.ts";
import type {
  ListAuditEventsRequest,
  ListAuditEventsResponseSchema,
} from "../../gen/proto/gatehouse/v1/admin_service_pb.ts";
import { GatehouseError } from "../../shared/errors/gatehouse-error.ts";
import { checkText, LIMITS } from "../flows/request-limits.ts";
import type { AdminDeps } from "./admin-deps.ts";
import { auditEventMessage } from "./admin-messages.ts";
import { decodePageToken, encodePageToken, pageSize } from "./page-cursor.ts";

type Reply<S extends DescMessage> = Promise<MessageInitShape<S>>;

/** Timestamp's own valid range (0001-01-01 to 9999-12-31, nanos 0-999,999,999); else invalid_request. */
function checkTimestamp(field: string, ts: Timestamp): Date {
  const date = timestampDate(ts);
  if (
    ts.seconds < -62_135_596_800n ||
    ts.seconds > 253_402_300_799n ||
    ts.nanos < 0 ||
    ts.nanos > 999_999_999 ||
    Number.isNaN(date.getTime())
  ) {
    throw new GatehouseError("invalid_request", `${field} is not a valid timestamp`, { metadata: { field } });
  }
  return date;
}

/** A page token's position: the occurred_at and id of the last event returned. */
export const AUDIT_CURSOR = ["millis", "serial"] as const;

/** The audit log, newest first, every filter ANDed; `action` ending in "." matches a group. */
export async function listAuditEvents(
  deps: AdminDeps,
  req: ListAuditEventsRequest,
): Reply<typeof ListAuditEventsResponseSchema> {
  const subject = checkText("subject", req.subject, LIMITS.subject);
  const clientId = checkText("client_id", req.clientId, 64);
  const action = checkText("action", req.action, 128);
  const actor = checkText("actor", req.actor, 128);
  const since = req.since ? checkTimestamp("since", req.since) : null;
  const until = req.until ? checkTimestamp("until", req.until) : null;
  if (since && until && since > until) {
    throw new GatehouseError("invalid_request", "since is after until", { metadata: { field: "since" } });
  }
  const take = pageSize(req.pageSize);
  const filters = [subject, clientId, action, actor, since?.getTime() ?? null, until?.getTime() ?? null];
  const cursor = req.pageToken === "" ? null : decodePageToken(req.pageToken, filters, AUDIT_CURSOR);
  const and: Prisma.AuditEventWhereInput[] = [];
  if (subject) and.push({ subject });
  if (clientId) and.push({ clientId });
  if (action) and.push(action.endsWith(".") ? { action: { startsWith: action } } : { action });
  if (actor) and.push({ actor });
  if (since) and.push({ occurredAt: { gte: since } });
  if (until) and.push({ occurredAt: { lt: until } });
  if (cursor) {
    const at = new Date(cursor[0]);
    const id = cursor[1];
    and.push({ OR: [{ occurredAt: { lt: at } }, { occurredAt: at, id: { lt: id } }] });
  }
  const rows = await deps.prisma.auditEvent.findMany({
    where: { AND: and },
    orderBy: [{ occurredAt: "desc" }, { id: "desc" }],
    take: take + 1,
  });
  const page = rows.slice(0, take);
  const last = page[page.length - 1];
  return {
    events: page.map(auditEventMessage),
    nextPageToken:
      rows.length > take && last ? encodePageToken([last.occurredAt.getTime(), last.id], filters) : "",
  };
}
