import { GatehouseError } from "../../shared/errors/gatehouse-error.ts";
import type { ClientRecord } from "../clients/client-record.ts";

/**
 * What a client may mint for a session, judged against the client as it is now. Issue checks a new
 * session with `checkSubjectAndTenant`; Refresh re-judges a stored session with `currentGrant`, so a
 * privilege an admin removed is gone from the next access token.
 */

/** The one wildcard of `allowed_tenants`: the client may name any tenant. */
export const ANY_TENANT = "*";

type Lists = {
  readonly [K in keyof ClientRecord &
    (
      | "allowedAudiences"
      | "allowedScopes"
      | "allowedClaims"
      | "allowedTenants"
      | "allowedSubjectPrefixes"
    )]: readonly string[];
};

/**
 * Refuses a subject outside the client's subject prefixes and a tenant it does not serve. A client
 * with no allowed tenants may not set one at all: tenant isolation is opted into per client, never
 * assumed.
 */
export function checkSubjectAndTenant(client: Lists, subject: string, tenant: string | null): void {
  const prefixes = client.allowedSubjectPrefixes;
  if (prefixes.length > 0 && !prefixes.some((p) => subject.startsWith(p))) {
    throw new GatehouseError("subject_not_allowed", "subject is outside this client's subject prefixes", {
      metadata: { field: "subject" },
    });
  }
  if (
    tenant !== null &&
    !client.allowedTenants.includes(ANY_TENANT) &&
    !client.allowedTenants.includes(tenant)
  ) {
    throw new GatehouseError("tenant_not_allowed", `tenant not allowed for this client: ${tenant}`, {
      metadata: { field: "tenant", tenant },
    });
  }
}

export interface StoredGrant {
  subject: string;
  tenant: string | null;
  scopes: readonly string[];
  audience: readonly string[];
  claims: Record<string, unknown> | null;
}

/**
 * The part of a session's grant the client may still mint. Scopes and custom claims the client lost
 * are dropped (the session goes on with less, as an Issue today would give). Audiences are narrowed
 * the same way, but a session left with no audience is refused (`audience_not_allowed`): a token for
 * nobody is useless and a silent fallback to other audiences would widen it. A subject or tenant the
 * client no longer serves is refused too: that is who the session is, nothing to narrow.
 */
export function currentGrant(
  client: Lists,
  session: StoredGrant,
): { scopes: string[]; audience: string[]; claims: Record<string, unknown> | null } {
  checkSubjectAndTenant(client, session.subject, session.tenant);
  const audience = session.audience.filter((a) => client.allowedAudiences.includes(a));
  if (audience.length === 0) {
    throw new GatehouseError(
      "audience_not_allowed",
      `this client may no longer address the session's audience: ${session.audience.join(" ")}`,
      { metadata: { audience: session.audience.join(" ") } },
    );
  }
  const scopes = session.scopes.filter((s) => client.allowedScopes.includes(s));
  let claims: Record<string, unknown> | null = null;
  for (const [name, value] of Object.entries(session.claims ?? {})) {
    if (!client.allowedClaims.includes(name)) continue;
    claims ??= {};
    claims[name] = value;
  }
  return { scopes, audience, claims };
}
