/**
 * Who may call what. Roles are coarse on purpose; finer limits (audiences, scopes, claims,
 * lifetimes) live on the client row and are checked by each flow.
 */
const CLIENT_ROLES = ["issuer", "service", "revoker", "introspector", "admin"] as const;
export type ClientRole = (typeof CLIENT_ROLES)[number];

export type TokenServiceMethod =
  | "Issue"
  | "IssueServiceToken"
  | "Refresh"
  | "Revoke"
  | "Introspect"
  | "ListSessions"
  | "GetJwks"
  | "Exchange";

/**
 * Roles that unlock a method for any target. `Refresh` and `Revoke` are also open to any client for
 * its own tokens (checked in the flow, which knows whose token it is); `ListSessions` for an issuer
 * is limited to its own sessions.
 */
const ROLES_FOR: Record<TokenServiceMethod, readonly ClientRole[] | "anyone" | "any-client"> = {
  GetJwks: "anyone",
  Issue: ["issuer", "admin"],
  IssueServiceToken: ["service", "admin"],
  Refresh: "any-client",
  Revoke: "any-client",
  Introspect: ["introspector", "admin"],
  ListSessions: ["issuer", "admin"],
  // A service acting for a user calls the next service: the same callers that mint service tokens,
  // bounded by the same allow-lists. An issuer cannot exchange: it mints for users, it does not act
  // for them.
  Exchange: ["service", "admin"],
};

export function mayCall(roles: readonly string[], method: TokenServiceMethod): boolean {
  const allowed = ROLES_FOR[method];
  if (allowed === "anyone" || allowed === "any-client") return true;
  return roles.some((r) => (allowed as readonly string[]).includes(r));
}

/** Whether the caller may act on every subject's and client's tokens, not only its own. */
export function actsForEveryone(roles: readonly string[], method: "Revoke" | "ListSessions"): boolean {
  if (roles.includes("admin")) return true;
  return method === "Revoke" && roles.includes("revoker");
}
