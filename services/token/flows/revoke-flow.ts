import type { MessageInitShape, MessageShape } from "@bufbuild/protobuf";
import type {
  RevokeRequestSchema,
  RevokeResponseSchema,
} from "../../gen/proto/gatehouse/v1/token_service_pb.ts";
import { GatehouseError } from "../../shared/errors/gatehouse-error.ts";
import { clientActorName } from "../audit/audit-actions.ts";
import { actsForEveryone } from "../clients/caller-roles.ts";
import type { RevokedSessionRow, SessionRevocation } from "../store/token-store.ts";
import type { Caller, FlowDeps } from "./flow-deps.ts";
import { readOwnAccessToken } from "./own-access-token.ts";
import {
  type PresentedRefreshToken,
  presentRefreshToken,
  readPresentedState,
} from "./presented-refresh-token.ts";
import { checkText, checkToken, checkUuid, LIMITS } from "./request-limits.ts";
import { retryConflicts } from "./retry-conflicts.ts";

type RevokeResult = MessageInitShape<typeof RevokeResponseSchema>;

/**
 * Revoke by refresh token, access token, session or subject. Idempotent, like RFC 7009: revoking
 * what is already revoked, unknown, or not the caller's to revoke answers `sessions_revoked: 0`
 * rather than an error, so the answer reveals nothing about other clients' tokens.
 */
export async function revoke(
  deps: FlowDeps,
  caller: Caller,
  req: MessageShape<typeof RevokeRequestSchema>,
): Promise<RevokeResult> {
  const reason = checkText("reason", req.reason, LIMITS.reason) || "revoked by client";
  const everyone = actsForEveryone(caller.client.roles, "Revoke");
  const now = deps.now();
  const base = {
    accessOnly: req.accessOnly,
    ownerClientId: everyone ? null : caller.client.id,
    reason,
    now: new Date(now),
    relevantUntil: new Date(now + deps.maxAccessTokenTtlSeconds * 1000),
    oldestLiveMint: new Date(now - deps.maxAccessTokenTtlSeconds * 1000),
    actor: clientActorName(caller.client.id),
    requestId: caller.requestId,
  };
  const sessions = (r: Pick<SessionRevocation, "selector" | "value">) =>
    retryConflicts(() => deps.store.revokeSessions({ ...base, ...r }));
  // With access_only the sessions live on (their version moved): none was revoked.
  const counted = (rows: readonly unknown[]) => (req.accessOnly ? 0 : rows.length);

  const target = req.target;
  const eventIds: string[] = [];
  let sessionsRevoked = 0;
  switch (target.case) {
    case "refreshToken": {
      const presented = await presentRefreshToken(deps, target.value);
      if (presented !== null && "problem" in presented)
        throw new GatehouseError("invalid_request", presented.problem, {
          metadata: { field: "refresh_token" },
        });
      const rows = await sessionsOfRefreshToken(deps, presented, sessions);
      sessionsRevoked = counted(rows);
      eventIds.push(...rows.map((r) => r.event_id));
      break;
    }
    case "sessionId": {
      const rows = await sessions({ selector: "session_id", value: checkUuid("session_id", target.value) });
      sessionsRevoked = counted(rows);
      eventIds.push(...rows.map((r) => r.event_id));
      break;
    }
    case "subject": {
      const subject = checkText("subject", target.value, LIMITS.subject, { required: true });
      const rows = await sessions({ selector: "subject", value: subject });
      sessionsRevoked = counted(rows);
      eventIds.push(...rows.map((r) => r.event_id));
      // A subject-wide cut-off also kills tokens of sessions we do not hold rows for (service tokens,
      // other clients); only a caller acting for everyone may set one.
      if (everyone && !req.accessOnly) {
        const cut = await retryConflicts(() =>
          deps.store.revokeSubject(subject, base.now, base.relevantUntil, {
            actor: clientActorName(caller.client.id),
            requestId: caller.requestId,
            reason,
          }),
        );
        if (cut) eventIds.push(cut.eventId);
      }
      break;
    }
    case "accessToken": {
      const parsed = await readOwnAccessToken(
        deps.keys,
        deps.issuer,
        checkToken("access_token", target.value),
        now,
      );
      if (!parsed.ok) {
        if (parsed.expired) break; // nothing left to revoke
        throw new GatehouseError(
          "invalid_request",
          "access_token is not a valid token issued by this service",
          {
            metadata: { field: "access_token" },
          },
        );
      }
      const t = parsed.token;
      if (!everyone && t.clientId !== caller.client.id) break;
      const jti = await retryConflicts(() =>
        deps.store.revokeAccessToken({
          jti: t.jti,
          sessionId: t.sid,
          subject: t.sub,
          clientId: t.clientId,
          expiresAt: new Date(t.exp * 1000),
          reason,
          now: base.now,
          actor: clientActorName(caller.client.id),
          requestId: caller.requestId,
        }),
      );
      if (jti) eventIds.push(jti.eventId);
      // RFC 7009 lets revoking an access token end its grant too; a leaked access token usually
      // means the session is compromised, so that is the default and access_only narrows it.
      if (t.sid !== null && !req.accessOnly) {
        const rows = await sessions({ selector: "session_id", value: t.sid });
        sessionsRevoked = counted(rows);
        eventIds.push(...rows.map((r) => r.event_id));
      }
      break;
    }
    default:
      throw new GatehouseError(
        "invalid_request",
        "one of refresh_token, access_token, session_id or subject is required",
        { metadata: { field: "target" } },
      );
  }
  const propagated = eventIds.length === 0 ? true : await deps.publish(eventIds).catch(() => false);
  deps.log.info(
    {
      requestId: caller.requestId,
      clientId: caller.client.id,
      target: target.case,
      sessionsRevoked,
      events: eventIds.length,
      accessOnly: req.accessOnly,
    },
    "revoked",
  );
  return { sessionsRevoked, eventIds, propagated };
}

/**
 * The sessions a refresh token revokes: a legacy token's by its row; a v2 token's only when it is a
 * genuine token of its family (MAC checked, and the stored hash where one is kept), so a made-up
 * token naming a real session revokes nothing. Unknown tokens revoke nothing, as in RFC 7009.
 */
async function sessionsOfRefreshToken(
  deps: FlowDeps,
  presented: PresentedRefreshToken | null,
  sessions: (r: Pick<SessionRevocation, "selector" | "value">) => Promise<RevokedSessionRow[]>,
): Promise<RevokedSessionRow[]> {
  if (presented === null) return [];
  if (presented.family === null) return sessions({ selector: "refresh_token", value: presented.hash });
  if ((await readPresentedState(deps, presented)) === null) return [];
  return sessions({ selector: "session_id", value: presented.family.sessionId });
}
