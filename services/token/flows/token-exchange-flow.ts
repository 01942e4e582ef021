import { randomUUID } from "node:crypto";
import { GatehouseError } from "../../shared/errors/gatehouse-error.ts";
import { clientActorName } from "../audit/audit-actions.ts";
import { buildAccessTokenClaims } from "../tokens/access-token-claims.ts";
import { accessTokenRevocation } from "./access-token-liveness.ts";
import { checkSubjectAndTenant } from "./client-allow-lists.ts";
import type { Caller, FlowDeps } from "./flow-deps.ts";
import { type OwnAccessToken, readOwnAccessToken } from "./own-access-token.ts";
import { checkList, checkToken, LIMITS } from "./request-limits.ts";
import {
  ACCESS_TOKEN_TYPE,
  JWT_TOKEN_TYPE,
  type TokenExchangeRequest,
  type TokenExchangeResult,
} from "./token-exchange-request.ts";
import {
  actorChain,
  checkMayAct,
  exchangedGrant,
  exchangedLifetimeSeconds,
  nestActor,
  readActorClaim,
} from "./token-exchange-rules.ts";

/**
 * Token exchange (RFC 8693): a service holding a user's access token gets one for another audience,
 * acting for that user. The new token keeps the subject token's `sub`, `sid`, `sv` and `tenant`, so
 * revoking the session kills it everywhere, records the actor chain in `act`, and lives no longer
 * than the subject token. The actor is the `actor_token`'s subject when one is given (it must be
 * the calling client's own token), else the calling client.
 */
export async function exchangeToken(
  deps: FlowDeps,
  caller: Caller,
  req: TokenExchangeRequest,
): Promise<TokenExchangeResult> {
  const client = caller.client;
  checkTokenType("subject_token_type", req.subjectTokenType);
  checkToken("subject_token", req.subjectToken);
  if (req.actorToken !== "") {
    checkTokenType("actor_token_type", req.actorTokenType);
    checkToken("actor_token", req.actorToken);
  } else if (req.actorTokenType !== "") {
    throw new GatehouseError("invalid_request", "actor_token_type is only allowed with actor_token", {
      metadata: { field: "actor_token_type" },
    });
  }
  checkTokenType("requested_token_type", req.requestedTokenType);
  const requested = {
    audience: checkList(
      "audience",
      [...req.audience, ...req.resource],
      LIMITS.audienceItems,
      LIMITS.audience,
    ),
    scopes: checkList("scopes", req.scopes, LIMITS.scopeItems, LIMITS.scope),
  };

  const now = deps.now();
  const [subject, actorToken] = await Promise.all([
    liveToken(deps, "subject_token", req.subjectToken, now),
    req.actorToken === "" ? null : liveToken(deps, "actor_token", req.actorToken, now),
  ]);
  if (actorToken !== null && actorToken.clientId !== client.id) {
    throw new GatehouseError("invalid_request", "actor_token was not issued to the calling client", {
      metadata: { field: "actor_token" },
    });
  }
  const actor = actorToken?.sub ?? client.id;
  const previous = readActorClaim(subject.act);
  const audit = (
    outcome: "success" | "denied",
    details: { audience: string[]; scopes: string[]; actors: string[]; jti?: string },
  ) =>
    deps.store.recordExchange({
      now: new Date(now),
      outcome,
      actor: clientActorName(client.id),
      requestId: caller.requestId,
      sessionId: subject.sid,
      subject: subject.sub,
      clientId: client.id,
      details: { ...details, subject_token_jti: subject.jti },
    });
  try {
    checkMayAct(subject.mayAct, actor);
  } catch (err) {
    // Someone holding the user's token tried to act for them against the user's `may_act`: worth a
    // row, like a reused refresh token.
    await audit("denied", { ...requested, actors: [actor, ...actorChain(previous)] });
    throw err;
  }
  checkSubjectAndTenant(client, subject.sub, subject.tenant);
  const act = nestActor(actor, previous);
  const grant = exchangedGrant(client, subject, requested);

  const nowSeconds = Math.floor(now / 1000);
  const ttl = exchangedLifetimeSeconds(
    nowSeconds,
    subject.exp,
    client.accessTokenTtlSeconds,
    deps.maxAccessTokenTtlSeconds,
  );
  const jti = randomUUID();
  const claims = buildAccessTokenClaims({
    issuer: deps.issuer,
    subject: subject.sub,
    audience: grant.audience,
    clientId: client.id,
    scopes: grant.scopes,
    ...(subject.sid !== null ? { sessionId: subject.sid, sessionVersion: subject.sv ?? 1 } : {}),
    tenant: subject.tenant,
    custom: grant.custom,
    jti,
    nowSeconds,
    ttlSeconds: ttl,
  });
  claims.act = act;
  // may_act limits every later step too: an exchanged token keeps it, so only that party acts on.
  if (subject.mayAct !== undefined) claims.may_act = subject.mayAct;
  const accessToken = deps.keys.active().sign(claims);
  const actors = actorChain(act);
  await audit("success", { audience: grant.audience, scopes: grant.scopes, actors, jti });
  return {
    accessToken,
    issuedTokenType: ACCESS_TOKEN_TYPE,
    tokenType: "Bearer",
    expiresAt: nowSeconds + ttl,
    expiresIn: ttl,
    scopes: grant.scopes,
    audience: grant.audience,
    actors,
  };
}

/** Our access tokens are JWTs, so either identifier names them; empty means an access token. */
function checkTokenType(field: string, value: string): void {
  if (value === "" || value === ACCESS_TOKEN_TYPE || value === JWT_TOKEN_TYPE) return;
  throw new GatehouseError(
    "unsupported_token_type",
    `${field} must be ${ACCESS_TOKEN_TYPE} or ${JWT_TOKEN_TYPE}`,
    { metadata: { field } },
  );
}

/**
 * One of our access tokens, unexpired and unrevoked, judged on Postgres (the source of truth).
 * A token that is not ours (another issuer, unknown key, bad signature, not a JWT) is
 * `invalid_grant`; expired `token_expired`; revoked its revocation's code.
 */
async function liveToken(
  deps: FlowDeps,
  field: "subject_token" | "actor_token",
  token: string,
  now: number,
): Promise<OwnAccessToken> {
  const parsed = await readOwnAccessToken(deps.keys, deps.issuer, token, now);
  if (!parsed.ok) {
    if (parsed.expired)
      throw new GatehouseError("token_expired", `${field} has expired`, { metadata: { field } });
    throw new GatehouseError("invalid_grant", `${field} is not an access token of this issuer`, {
      metadata: { field },
    });
  }
  const t = parsed.token;
  const status = await deps.store.accessTokenStatus(t.jti, t.sid, t.sub, t.clientId);
  const revoked = accessTokenRevocation(t, status);
  if (revoked !== null)
    throw new GatehouseError(revoked, `${field} has been revoked`, { metadata: { field } });
  return t;
}
