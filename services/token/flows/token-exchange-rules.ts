import { GatehouseError } from "../../shared/errors/gatehouse-error.ts";
import type { ClientRecord } from "../clients/client-record.ts";
import { accessTokenTtlSeconds } from "./access-token-lifetime.ts";

/**
 * The pure rules of token exchange (RFC 8693): who the actor chain becomes, whether `may_act`
 * admits the actor, what audience and scopes the new token may carry, and how long it may live.
 * The flow (token-exchange-flow.ts) reads and checks the tokens; these decide.
 */

/** RFC 8693 §4.1 `act`: the current actor, with the actor before it nested inside. */
export interface ActorClaim {
  sub: string;
  act?: ActorClaim;
}

/**
 * Longest actor chain we mint. Each hop is one service calling the next on the user's behalf; a
 * chain longer than this is a loop or a misuse, and every hop adds bytes to every request.
 */
export const MAX_ACTOR_CHAIN = 8;

/** A subject's claim of an act chain as we signed it; anything else means the token is not ours. */
export function readActorClaim(value: unknown, depth = 1): ActorClaim | null {
  if (value === undefined) return null;
  if (typeof value !== "object" || value === null || Array.isArray(value) || depth > MAX_ACTOR_CHAIN) {
    throw new GatehouseError("invalid_grant", "subject_token carries an unreadable act claim", {
      metadata: { field: "subject_token" },
    });
  }
  const { sub, act } = value as Record<string, unknown>;
  if (typeof sub !== "string" || sub === "") {
    throw new GatehouseError("invalid_grant", "subject_token carries an act claim without sub", {
      metadata: { field: "subject_token" },
    });
  }
  const inner = readActorClaim(act, depth + 1);
  return inner === null ? { sub } : { sub, act: inner };
}

/** The actors of a chain, outermost (most recent) first. */
export function actorChain(act: ActorClaim | null): string[] {
  const chain: string[] = [];
  for (let a = act; a !== null && a !== undefined; a = a.act ?? null) chain.push(a.sub);
  return chain;
}

/** The new actor outermost, the subject token's chain nested inside it (RFC 8693 §4.1). */
export function nestActor(actor: string, previous: ActorClaim | null): ActorClaim {
  if (actorChain(previous).length + 1 > MAX_ACTOR_CHAIN) {
    throw new GatehouseError("invalid_request", `the actor chain would exceed ${MAX_ACTOR_CHAIN} actors`, {
      metadata: { field: "subject_token" },
    });
  }
  return previous === null ? { sub: actor } : { sub: actor, act: previous };
}

/**
 * RFC 8693 §4.4: when the subject token says who may act for its subject, the actor must be that
 * party. We sign `may_act` only as `{ "sub": ... }` (see checkCustomClaims), so `sub` is what
 * identifies the party; a `may_act` we cannot read admits nobody.
 */
export function checkMayAct(mayAct: unknown, actor: string): void {
  if (mayAct === undefined) return;
  const allowed =
    typeof mayAct === "object" && mayAct !== null ? (mayAct as Record<string, unknown>).sub : undefined;
  if (allowed !== actor) {
    throw new GatehouseError("actor_not_allowed", `the subject token does not let ${actor} act for it`, {
      metadata: { actor },
    });
  }
}

type Lists = Pick<ClientRecord, "allowedAudiences" | "allowedScopes" | "allowedClaims">;

/**
 * What the new token may carry. The audience is required (a token for "wherever" would widen what
 * the subject token was good for) and each must be one the exchanging client may request. Scopes
 * are at most the subject token's intersected with the client's; none asked for means all of that
 * intersection. Custom claims are the subject token's that the client may set.
 */
export function exchangedGrant(
  client: Lists,
  subject: { scopes: readonly string[]; custom: Readonly<Record<string, unknown>> },
  requested: { audience: readonly string[]; scopes: readonly string[] },
): { audience: string[]; scopes: string[]; custom: Record<string, unknown> | null } {
  if (requested.audience.length === 0) {
    throw new GatehouseError("invalid_request", "audience or resource is required", {
      metadata: { field: "audience" },
    });
  }
  const badAudience = requested.audience.filter((a) => !client.allowedAudiences.includes(a));
  if (badAudience.length > 0) {
    throw new GatehouseError(
      "audience_not_allowed",
      `audience not allowed for this client: ${badAudience.join(" ")}`,
      { metadata: { audience: badAudience.join(" ") } },
    );
  }
  const grantable = subject.scopes.filter((s) => client.allowedScopes.includes(s));
  const badScopes = requested.scopes.filter((s) => !grantable.includes(s));
  if (badScopes.length > 0) {
    throw new GatehouseError(
      "scope_not_allowed",
      `scopes beyond the subject token's and this client's: ${badScopes.join(" ")}`,
      { metadata: { scope: badScopes.join(" ") } },
    );
  }
  let custom: Record<string, unknown> | null = null;
  for (const [name, value] of Object.entries(subject.custom)) {
    if (!client.allowedClaims.includes(name)) continue;
    custom ??= {};
    custom[name] = value;
  }
  return {
    audience: [...requested.audience],
    scopes: requested.scopes.length > 0 ? [...requested.scopes] : grantable,
    custom,
  };
}

/**
 * The new token's lifetime in seconds: the client's usual one, cut to what is left of the subject
 * token, so an exchange never extends how long the user's grant is good for.
 */
export function exchangedLifetimeSeconds(
  nowSeconds: number,
  subjectExp: number,
  clientTtlSeconds: number,
  maxTtlSeconds: number,
): number {
  // The subject token was checked unexpired on the same clock, so what is left is at least 1 s.
  return Math.min(accessTokenTtlSeconds(clientTtlSeconds, maxTtlSeconds), subjectExp - nowSeconds);
}
