import type { MessageInitShape, MessageShape } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type {
  IntrospectRequestSchema,
  IntrospectResponseSchema,
} from "../../gen/proto/gatehouse/v1/token_service_pb.ts";
import { GatehouseError } from "../../shared/errors/gatehouse-error.ts";
import { REFRESH_TOKEN_PREFIX } from "../tokens/refresh-token-format.ts";
import { accessTokenRevocation } from "./access-token-liveness.ts";
import type { Caller, FlowDeps } from "./flow-deps.ts";
import { readOwnAccessToken } from "./own-access-token.ts";
import { presentRefreshToken, readPresentedState } from "./presented-refresh-token.ts";
import { decideRefresh } from "./refresh-decision.ts";
import { LIMITS } from "./request-limits.ts";

type IntrospectResult = MessageInitShape<typeof IntrospectResponseSchema>;

const INACTIVE: IntrospectResult = { active: false };

/**
 * RFC 7662: an active token's claims, or only `active: false` — for a token that is expired,
 * revoked, unknown, malformed or not ours alike, so the answer says nothing more.
 */
export async function introspect(
  deps: FlowDeps,
  _caller: Caller,
  req: MessageShape<typeof IntrospectRequestSchema>,
): Promise<IntrospectResult> {
  const token = req.token;
  if (token.length === 0)
    throw new GatehouseError("invalid_request", "token is required", { metadata: { field: "token" } });
  if (token.length > LIMITS.token) return INACTIVE;
  if (
    req.tokenTypeHint !== "" &&
    req.tokenTypeHint !== "access_token" &&
    req.tokenTypeHint !== "refresh_token"
  ) {
    throw new GatehouseError("invalid_request", "token_type_hint must be access_token or refresh_token", {
      metadata: { field: "token_type_hint" },
    });
  }
  // The prefix tells the two kinds apart, so the hint is only a hint (RFC 7662 §2.1).
  if (token.startsWith(REFRESH_TOKEN_PREFIX)) return introspectRefreshToken(deps, token);
  return introspectAccessToken(deps, token);
}

async function introspectRefreshToken(deps: FlowDeps, token: string): Promise<IntrospectResult> {
  const presented = await presentRefreshToken(deps, token);
  if (presented === null || "problem" in presented) return INACTIVE;
  const read = await readPresentedState(deps, presented);
  if (read === null) return INACTIVE;
  const row = read.row;
  const decision = decideRefresh(read.state, {
    callerClientId: row.client_id,
    now: new Date(deps.now()),
    graceMs: 0,
  });
  if (decision.kind !== "rotate") return INACTIVE;
  return {
    active: true,
    subject: row.subject,
    clientId: row.client_id,
    scopes: row.scopes,
    audience: row.audience,
    sessionId: row.session_id,
    sessionVersion: row.version,
    tokenType: "refresh_token",
    issuedAt: timestampFromMs(row.token_created_at.getTime()),
    expiresAt: timestampFromMs(Math.min(row.idle_expires_at.getTime(), row.expires_at.getTime())),
  };
}

async function introspectAccessToken(deps: FlowDeps, token: string): Promise<IntrospectResult> {
  const parsed = await readOwnAccessToken(deps.keys, deps.issuer, token, deps.now());
  if (!parsed.ok) return INACTIVE;
  const t = parsed.token;
  const status = await deps.store.accessTokenStatus(t.jti, t.sid, t.sub, t.clientId);
  if (accessTokenRevocation(t, status) !== null) return INACTIVE;
  const issuedAtMs = t.iat * 1000;
  return {
    active: true,
    subject: t.sub,
    clientId: t.clientId,
    scopes: t.scopes,
    audience: t.aud,
    sessionId: t.sid ?? "",
    sessionVersion: t.sv ?? 0,
    tokenType: "Bearer",
    issuedAt: timestampFromMs(issuedAtMs),
    expiresAt: timestampFromMs(t.exp * 1000),
    jti: t.jti,
  };
}
