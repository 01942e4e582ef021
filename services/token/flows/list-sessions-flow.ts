import type { MessageInitShape, MessageShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { PrismaClient } from "../../gen/prisma/client.ts";
import type {
  ListSessionsRequestSchema,
  ListSessionsResponseSchema,
} from "../../gen/proto/gatehouse/v1/token_service_pb.ts";
import { GatehouseError } from "../../shared/errors/gatehouse-error.ts";
import { decodePageToken, encodePageToken } from "../admin/page-cursor.ts";
import { actsForEveryone } from "../clients/caller-roles.ts";
import type { Caller, FlowDeps } from "./flow-deps.ts";
import { checkText, LIMITS } from "./request-limits.ts";

const DEFAULT_PAGE = 50;

/** A page token's position: the created_at and id of the last session returned. */
export const SESSION_CURSOR = ["millis", "uuid"] as const;

/** A subject's live sessions, newest first; an issuer sees only the sessions it created. */
export async function listSessions(
  deps: FlowDeps & { prisma: PrismaClient },
  caller: Caller,
  req: MessageShape<typeof ListSessionsRequestSchema>,
): Promise<MessageInitShape<typeof ListSessionsResponseSchema>> {
  const subject = checkText("subject", req.subject, LIMITS.subject, { required: true });
  if (req.pageSize < 0 || req.pageSize > LIMITS.pageSize) {
    throw new GatehouseError("invalid_request", `page_size must be between 0 and ${LIMITS.pageSize}`, {
      metadata: { field: "page_size" },
    });
  }
  const take = req.pageSize === 0 ? DEFAULT_PAGE : req.pageSize;
  const cursor = req.pageToken === "" ? null : decodePageToken(req.pageToken, [subject], SESSION_CURSOR);
  const now = new Date(deps.now());
  const rows = await deps.prisma.session.findMany({
    where: {
      subject,
      revokedAt: null,
      expiresAt: { gt: now },
      idleExpiresAt: { gt: now },
      ...(actsForEveryone(caller.client.roles, "ListSessions") ? {} : { clientId: caller.client.id }),
      ...(cursor
        ? {
            OR: [
              { createdAt: { lt: new Date(cursor[0]) } },
              { createdAt: new Date(cursor[0]), id: { lt: cursor[1] } },
            ],
          }
        : {}),
    },
    orderBy: [{ createdAt: "desc" }, { id: "desc" }],
    take: take + 1,
  });
  const page = rows.slice(0, take);
  const last = page[page.length - 1];
  return {
    sessions: page.map((s) => ({
      sessionId: s.id,
      subject: s.subject,
      clientId: s.clientId,
      createdAt: timestampFromDate(s.createdAt),
      lastUsedAt: timestampFromDate(s.lastUsedAt),
      idleExpiresAt: timestampFromDate(s.idleExpiresAt),
      expiresAt: timestampFromDate(s.expiresAt),
      version: s.version,
      scopes: s.scopes,
      device: {
        userAgent: s.deviceUserAgent ?? "",
        ipAddress: s.deviceIpAddress ?? "",
        name: s.deviceName ?? "",
      },
    })),
    nextPageToken:
      rows.length > take && last ? encodePageToken([last.createdAt.getTime(), last.id], [subject]) : "",
  };
}
