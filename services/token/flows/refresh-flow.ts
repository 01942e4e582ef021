import { randomUUID } from "node:crypto";
import type { MessageInitShape, MessageShape } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type {
  RefreshRequestSchema,
  RefreshResponseSchema,
} from "../../gen/proto/gatehouse/v1/token_service_pb.ts";
import { GatehouseError } from "../../shared/errors/gatehouse-error.ts";
import { fingerprint } from "../../shared/logging/index.ts";
import type { RefreshStateRow } from "../store/token-store.ts";
import { buildAccessTokenClaims } from "../tokens/access-token-claims.ts";
import {
  deriveSuccessor,
  hashRefreshToken,
  refreshTokenShapeProblem,
} from "../tokens/refresh-token-format.ts";
import { accessTokenTtlSeconds } from "./access-token-lifetime.ts";
import type { Caller, FlowDeps } from "./flow-deps.ts";
import { decideRefresh, narrowScopes, type StoredRefreshState } from "./refresh-decision.ts";
import { checkList, LIMITS } from "./request-limits.ts";
import { retryConflicts } from "./retry-conflicts.ts";

function toDecisionState(row: RefreshStateRow | null): StoredRefreshState | null {
  if (row === null) return null;
  return {
    sessionId: row.session_id,
    clientId: row.client_id,
    sessionCreatedAt: row.session_created_at,
    sessionRevokedAt: row.session_revoked_at,
    idleExpiresAt: row.idle_expires_at,
    expiresAt: row.expires_at,
    usedAt: row.used_at,
    successorUsedAt: row.successor_used_at,
    subjectNotBefore: row.subject_not_before,
  };
}

/**
 * Refresh: rotate a refresh token, replay its successor to a concurrent duplicate inside the grace
 * window, or revoke the family on reuse. Reads the state, decides (pure), applies in one statement;
 * losing a race to a concurrent rotation of the same token just means deciding again on fresh state.
 */
export async function refresh(
  deps: FlowDeps,
  caller: Caller,
  req: MessageShape<typeof RefreshRequestSchema>,
): Promise<MessageInitShape<typeof RefreshResponseSchema>> {
  const problem = refreshTokenShapeProblem(req.refreshToken);
  if (problem) throw new GatehouseError("invalid_request", problem, { metadata: { field: "refresh_token" } });
  const requestedScopes = checkList("scopes", req.scopes, LIMITS.scopeItems, LIMITS.scope);
  const token = req.refreshToken;
  const hash = hashRefreshToken(token);
  const successor = deriveSuccessor(token, deps.successorKey);
  const client = caller.client;

  for (let attempt = 0; attempt < 4; attempt++) {
    const row = await deps.store.readRefreshState(hash);
    const now = deps.now();
    const decision = decideRefresh(toDecisionState(row), {
      callerClientId: client.id,
      now: new Date(now),
      graceMs: client.refreshGraceSeconds * 1000,
    });
    if (decision.kind === "reject") throw new GatehouseError(decision.code, decision.message);
    const state = row!;

    if (decision.kind === "reuse") {
      const revoked = await retryConflicts(() =>
        deps.store.revokeForReuse(
          state.session_id,
          new Date(now),
          new Date(now + deps.maxAccessTokenTtlSeconds * 1000),
          { actor: client.id, requestId: caller.requestId, tokenFingerprint: fingerprint(token) },
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

    const narrowed = narrowScopes(state.scopes, requestedScopes);
    if ("error" in narrowed)
      throw new GatehouseError("scope_not_allowed", narrowed.error, { metadata: { field: "scopes" } });
    const key = deps.keys.active();
    const idleExpiresAt = now + client.refreshIdleTtlSeconds * 1000;
    let version = state.version;
    let refreshExpiresAt = Math.min(idleExpiresAt, state.expires_at.getTime());

    if (decision.kind === "rotate") {
      const result = await retryConflicts(() =>
        deps.store.rotate({
          sessionId: state.session_id,
          presentedHash: hash,
          successorHash: hashRefreshToken(successor),
          now: new Date(now),
          idleExpiresAt: new Date(idleExpiresAt),
          signingKid: key.kid,
        }),
      );
      if (result.kind !== "rotated") continue; // someone else rotated or revoked meanwhile: decide again
      version = result.version;
      refreshExpiresAt = result.refreshExpiresAt.getTime();
    } else {
      // Replay: the successor exists already; its expiry was set when it was created.
      refreshExpiresAt = Math.min(state.idle_expires_at.getTime(), state.expires_at.getTime());
    }

    const nowSeconds = Math.floor(now / 1000);
    const ttl = accessTokenTtlSeconds(client.accessTokenTtlSeconds, deps.maxAccessTokenTtlSeconds);
    const accessToken = key.sign(
      buildAccessTokenClaims({
        issuer: deps.issuer,
        subject: state.subject,
        audience: state.audience,
        clientId: state.client_id,
        scopes: narrowed.scopes,
        sessionId: state.session_id,
        sessionVersion: version,
        tenant: state.tenant,
        custom: state.claims,
        jti: randomUUID(),
        nowSeconds,
        ttlSeconds: ttl,
      }),
    );
    return {
      accessToken,
      accessTokenExpiresAt: timestampFromMs((nowSeconds + ttl) * 1000),
      refreshToken: successor,
      refreshTokenExpiresAt: timestampFromMs(refreshExpiresAt),
      sessionId: state.session_id,
      tokenType: "Bearer",
      scopes: narrowed.scopes,
      audience: state.audience,
    };
  }
  throw new GatehouseError("unavailable", "refresh kept racing with concurrent changes; retry", {
    retryAfterMs: 100,
  });
}
