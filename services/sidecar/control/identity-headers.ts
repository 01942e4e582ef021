import type { Identity } from "../verifier/identity.ts";

/** Every header the sidecar sets starts with this; callers' own copies are always removed. */
const IDENTITY_PREFIX = "x-gatehouse-";

export const IDENTITY_HEADERS = {
  subject: "x-gatehouse-subject",
  clientId: "x-gatehouse-client-id",
  scopes: "x-gatehouse-scopes",
  sessionId: "x-gatehouse-session-id",
  tenant: "x-gatehouse-tenant",
  actor: "x-gatehouse-actor",
  token: "x-gatehouse-jwt",
} as const;

/**
 * True for `x-gatehouse-*` in any letter case and with any `-` written as `_` (`x_gatehouse_subject`,
 * `X-Gatehouse_Jwt`): a header only the sidecar may set. CGI, WSGI and Rack map both spellings to
 * the same variable (`HTTP_X_GATEHOUSE_SUBJECT`), so an app behind them cannot tell ours from the
 * caller's underscore copy.
 */
export function isGatehouseHeader(name: string): boolean {
  if (name.startsWith(IDENTITY_PREFIX)) return true;
  if (name.length < IDENTITY_PREFIX.length) return false;
  return name.slice(0, IDENTITY_PREFIX.length).toLowerCase().replaceAll("_", "-") === IDENTITY_PREFIX;
}

/**
 * The headers that tell the app who is calling, as `[name, value]` pairs in lower case:
 * subject, client id, scopes (space-separated), and session id and tenant when the token has them;
 * for an exchanged token, its actor chain in `x-gatehouse-actor`: each actor's `sub`, outermost (the
 * service calling now) first, comma-separated, each percent-encoded (`encodeURIComponent`) so a `,`
 * in a name cannot forge another entry;
 * the token itself in `x-gatehouse-jwt` when `forwardToken` is set (the verifier must then expose it).
 * Claim values are signed by our token service but still only ever reach a header in a safe form:
 * anything outside printable ASCII is percent-encoded.
 */
export function identityHeaders(identity: Identity, forwardToken: boolean): [string, string][] {
  const headers: [string, string][] = [
    [IDENTITY_HEADERS.subject, safe(identity.subject)],
    [IDENTITY_HEADERS.clientId, safe(identity.clientId)],
    [IDENTITY_HEADERS.scopes, safe(identity.scopes.join(" "))],
  ];
  if (identity.sessionId !== undefined) headers.push([IDENTITY_HEADERS.sessionId, safe(identity.sessionId)]);
  if (identity.tenant !== undefined) headers.push([IDENTITY_HEADERS.tenant, safe(identity.tenant)]);
  if (identity.actors !== undefined)
    headers.push([IDENTITY_HEADERS.actor, identity.actors.map(encodeURIComponent).join(",")]);
  if (forwardToken && identity.token !== undefined) headers.push([IDENTITY_HEADERS.token, identity.token]);
  return headers;
}

const PRINTABLE = /^[\x20-\x7e]*$/;

function safe(value: string): string {
  return PRINTABLE.test(value) ? value : encodeURIComponent(value);
}
