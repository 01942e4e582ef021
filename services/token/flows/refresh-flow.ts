import { randomUUID } from "node:crypto";
import type { MessageInitShape, MessageShape } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type {
  RefreshRequestSchema,
  RefreshResponseSchema,
} from "../../gen/proto/gatehouse/v1/token_service_pb.ts";
import { GatehouseError } from "../../shared/errors/gatehouse-error.ts";
import { fingerprint } from "../../shared/logging/index.ts";
import { clientActorName } from "../audit/audit-actions.ts";
import type { ClientRecord } from "../clients/client-record.ts";
import type { ActiveKey } from "../keys/key-ring.ts";
import type { SessionRefreshRow } from "../store/token-store.ts";
import { buildAccessTokenClaims } from "../tokens/access-token-claims.ts";
import { deriveNextRefreshToken, hashRefreshToken } from "../tokens/refresh-token-format.ts";
import { accessTokenTtlSeconds } from "./access-token-lifetime.ts";
import { ANY_TENANT, currentGrant } from "./client-allow-lists.ts";
import type { Caller, FlowDeps } from "./flow-deps.ts";
import { presentRefreshToken, readPresentedState } from "./presented-refresh-token.ts";
import { decideRefresh, narrowScopes } from "./refresh-decision.ts";
import { checkList, LIMITS } from "./request-limits.ts";
import { retryConflicts } from "./retry-conflicts.ts";

type RefreshResult = MessageInitShape<typeof RefreshResponseSchema>;
type SessionIdentity = Pick<SessionRefreshRow, "session_id" | "subject" | "tenant">;
interface Grant {
  successor: string;
  scopes: string[];
  audience: string[];
  claims: Record<string, unknown> | null;
  version: number;
  refreshExpiresAt: number;
}

/**
 * The answer to a successful refresh: the successor and a new access token at the session's version,
 * carrying what the client may still grant (client-allow-lists.ts), not what the session once held.
 */
function refreshResponse(
  deps: FlowDeps,
  client: ClientRecord,
  key: ActiveKey,
  now: number,
  session: SessionIdentity,
  grant: Grant,
): RefreshResult {
  const nowSeconds = Math.floor(now / 1000);
  const ttl = accessTokenTtlSeconds(client.accessTokenTtlSeconds, deps.maxAccessTokenTtlSeconds);
  const accessToken = key.sign(
    buildAccessTokenClaims({
      issuer: deps.issuer,
      subject: session.subject,
      audience: grant.audience,
      clientId: client.id,
      scopes: grant.scopes,
      sessionId: session.session_id,
      sessionVersion: grant.version,
      tenant: session.tenant,
      custom: grant.claims,
      jti: randomUUID(),
      nowSeconds,
      ttlSeconds: ttl,
    }),
  );
  return {
    accessToken,
    accessTokenExpiresAt: timestampFromMs((nowSeconds + ttl) * 1000),
    refreshToken: grant.successor,
    refreshTokenExpiresAt: timestampFromMs(grant.refreshExpiresAt),
    sessionId: session.session_id,
    tokenType: "Bearer",
    scopes: grant.scopes,
    audience: grant.audience,
  };
}

/**
 * Refresh: rotate a refresh token, replay its successor to a concurrent duplicate inside the grace
 * window, or revoke the family on reuse.
 *
 * A v2 token's MAC is checked before anything else; a made-up one is refused like an unknown token
 * without touching the database. A plainly live v2 token is rotated in one statement that writes one
 * row. Everything else — a legacy token, or losing that statement to a concurrent change — goes
 * read → decide (pure) → apply; losing the apply to a concurrent rotation of the same token just
 * means deciding again on fresh state, which then replays the same successor.
 */
export async function refresh(
  deps: FlowDeps,
  caller: Caller,
  req: MessageShape<typeof RefreshRequestSchema>,
): Promise<RefreshResult> {
  // One instant per request, taken before any wait (even a refresh-key reload): a rotation records it
  // as the rotation time, and a concurrent duplicate compares its own against that. Reading the clock
  // after queueing for the pool instead would push duplicates that arrived together with the rotation
  // out of the grace window when the service is busy, and log their users out.
  const arrivedAt = deps.now();
  const presented = await presentRefreshToken(deps, req.refreshToken);
  if (presented !== null && "problem" in presented)
    throw new GatehouseError("invalid_request", presented.problem, { metadata: { field: "refresh_token" } });
  const requestedScopes = checkList("scopes", req.scopes, LIMITS.scopeItems, LIMITS.scope);
  if (presented === null) throw notValid();
  const token = req.refreshToken;
  // A rotation derives with the active keys and records their kids; a replay re-derives with those.
  const successorKey = deps.successorKeys.active();
  const macKey = deps.macKeys.active();
  const successorOf = (sessionId: string, generation: number) =>
    deriveNextRefreshToken(token, { sessionId, generation }, successorKey.key, macKey);
  const client = caller.client;
  const idleExpiry = (now: number) => new Date(now + client.refreshIdleTtlSeconds * 1000);

  // Narrowing needs the session's scopes before anything changes, so it always reads first.
  const family = presented.family;
  if (family !== null && requestedScopes.length === 0) {
    const now = arrivedAt;
    const key = deps.keys.active();
    const successor = successorOf(family.sessionId, family.generation);
    const rotated = await retryConflicts(() =>
      deps.store.rotateIfLive({
        sessionId: family.sessionId,
        presentedGeneration: family.generation,
        presentedHash: presented.hash,
        successorHash: hashRefreshToken(successor),
        now: new Date(now),
        idleExpiresAt: idleExpiry(now),
        signingKid: key.kid,
        callerClientId: client.id,
        successorKid: successorKey.kid,
        macKid: macKey.kid,
        allowed: {
          audiences: client.allowedAudiences,
          tenants: client.allowedTenants.includes(ANY_TENANT) ? null : client.allowedTenants,
          subjectPrefixes: client.allowedSubjectPrefixes,
        },
      }),
    );
    // The statement rotates only a session `currentGrant` admits, so this never refuses a used token.
    if (rotated) {
      return refreshResponse(deps, client, key, now, rotated, {
        successor,
        ...currentGrant(client, rotated),
        version: rotated.version,
        refreshExpiresAt: rotated.refresh_expires_at.getTime(),
      });
    }
  }

  for (let attempt = 0; attempt < 4; attempt++) {
    const read = await readPresentedState(deps, presented);
    const now = arrivedAt;
    const decision = decideRefresh(read === null ? null : read.state, {
      callerClientId: client.id,
      now: new Date(now),
      graceMs: client.refreshGraceSeconds * 1000,
    });
    if (decision.kind === "reject") throw new GatehouseError(decision.code, decision.message);
    const { row: state, generation } = read!;

    if (decision.kind === "reuse") {
      const revoked = await retryConflicts(() =>
        deps.store.revokeForReuse(
          state.session_id,
          new Date(now),
          new Date(now + deps.maxAccessTokenTtlSeconds * 1000),
          {
            actor: clientActorName(client.id),
            requestId: caller.requestId,
            tokenFingerprint: fingerprint(token),
          },
        ),
      );
      deps.log.warn(
        {
          sessionId: state.session_id,
          clientId: client.id,
          token_fp: fingerprint(token),
          requestId: caller.requestId,
        },
        "refresh token reuse detected: session revoked",
      );
      if (revoked) await deps.publish([revoked.eventId]).catch(() => false);
      throw new GatehouseError(
        "refresh_token_reused",
        "refresh token was already used; the session has been revoked",
      );
    }

    // Refused here, before anything changes: the token stays usable if the admin restores the lists.
    const grant = currentGrant(client, state);
    const narrowed = narrowScopes(grant.scopes, requestedScopes);
    if ("error" in narrowed) {
      throw new GatehouseError("scope_not_allowed", narrowed.error, { metadata: { field: "scopes" } });
    }
    const key = deps.keys.active();
    let version = state.version;
    // Replay: the successor exists already, with the expiry it was given when it was created.
    let refreshExpiresAt = Math.min(state.idle_expires_at.getTime(), state.expires_at.getTime());
    let successor: string;

    if (decision.kind === "rotate") {
      successor = successorOf(state.session_id, generation);
      const result = await retryConflicts(() =>
        deps.store.rotate({
          sessionId: state.session_id,
          presentedGeneration: generation,
          presentedHash: presented.hash,
          successorHash: hashRefreshToken(successor),
          now: new Date(now),
          idleExpiresAt: idleExpiry(now),
          signingKid: key.kid,
          successorKid: successorKey.kid,
          macKid: macKey.kid,
        }),
      );
      if (result === null) continue; // rotated or revoked meanwhile: decide again
      version = result.version;
      refreshExpiresAt = result.refreshExpiresAt.getTime();
    } else {
      successor = await read!.replaySuccessor();
    }
    return refreshResponse(deps, client, key, now, state, {
      successor,
      audience: grant.audience,
      claims: grant.claims,
      scopes: narrowed.scopes,
      version,
      refreshExpiresAt,
    });
  }
  throw new GatehouseError("unavailable", "refresh kept racing with concurrent changes; retry", {
    retryAfterMs: 100,
  });
}

/** Unknown, foreign and forged tokens all get this answer (refresh-decision.ts gives it for the first two). */
const notValid = () => new GatehouseError("invalid_grant", "refresh token is not valid");
