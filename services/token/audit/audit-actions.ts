/**
 * The audit log's vocabulary, in one place. Every row Gatehouse writes names one of these actions
 * and one of these actors; `AuditEvent.action` and `AuditEvent.actor` in admin_service.proto and
 * `gatehouse audit list --action/--actor` speak the same words.
 *
 * Action: `<object>.<verb>`, the verb in the imperative — what was attempted, not what happened:
 * `outcome` says how it ended (`success`, `denied`, `failed`), so one name serves a change that was
 * made, refused, or failed (`client.disable` denied reads right; `client.disabled` denied would not).
 * Filtering on a group is a prefix ending in "." (`client.`).
 *
 * Actor: `client:<client_id>` for an authenticated caller (admin or token flows alike), or
 * `system:<component>` when Gatehouse acts on its own (`system:key-rotation`,
 * `system:audit-retention`, `system:cli` for commands run straight on the database; the full list
 * is in docs/operations.md).
 */
export type AuditAction =
  // AdminService on clients; `get` and `list` are audited only when refused.
  | "client.create"
  | "client.get"
  | "client.list"
  | "client.update"
  | "client.rotate_secret"
  | "client.disable"
  | "client.enable"
  // A refused login (wrong secret, disabled or unknown client), outcome `denied`: one row per
  // client id per minute and replica with the count, by `system:authenticator`.
  | "client.authenticate"
  // Signing-key lifecycle, by an admin or by scheduled rotation; `list` only when refused.
  | "signing_key.create"
  | "signing_key.activate"
  | "signing_key.retire"
  | "signing_key.revoke"
  | "signing_key.rotate"
  | "signing_key.rewrap"
  | "signing_key.list"
  // The refresh successor key replaced by `gatehouse keys rotate-successor`.
  | "refresh_key.rotate"
  // TokenService.Revoke, one row per request.
  | "session.revoke"
  | "session.revoke_access"
  | "subject.revoke"
  | "access_token.revoke"
  // A rotated refresh token presented again outside the grace window (outcome `denied`): the
  // session is revoked with it; details hold the token's fingerprint, never the token.
  | "refresh_token.reuse"
  // ListAuditEvents (audited only when refused), and retention deleting old rows.
  | "audit.list"
  | "audit.prune"
  // TokenService.Exchange (RFC 8693): an access token minted for another audience on a subject's
  // behalf; details name the actor chain and both tokens' `jti`. Outcome `denied` when the subject
  // token's `may_act` refused the actor.
  | "access_token.exchange";

/** Who acted: a calling client or a part of Gatehouse. */
export type AuditActorName = `client:${string}` | `system:${string}`;

/** The actor name of a calling client. */
export function clientActorName(clientId: string): AuditActorName {
  return `client:${clientId}`;
}
