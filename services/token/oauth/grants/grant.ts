import type { GatehouseErrorCode } from "../../../shared/errors/codes.ts";
import type { TokenServiceMethod } from "../../clients/caller-roles.ts";
import type { Caller, FlowDeps } from "../../flows/flow-deps.ts";
import type { FormParams } from "../form-body.ts";
import type { GrantErrorName } from "../oauth-errors.ts";

/** A successful token answer (RFC 6749 §5.1; RFC 8693 §2.2.1 adds `issued_token_type`). */
interface TokenResponse {
  access_token: string;
  issued_token_type?: string;
  token_type: "Bearer";
  expires_in: number;
  refresh_token?: string;
  scope?: string;
}

/**
 * One grant type of the token endpoint: which TokenService method's roles, limits and metrics it
 * runs under, and how it turns the form into that method's flow and the flow's answer into §5.1.
 */
export interface Grant {
  readonly method: TokenServiceMethod;
  handle(deps: FlowDeps, caller: Caller, form: FormParams): Promise<TokenResponse>;
  /**
   * The grant's own `error` for a code, where its RFC departs from RFC 6749 §5.2 (RFC 8693 §2.2.2);
   * null, or no function, leaves the code to the mapping every grant shares (oauth-errors.ts).
   */
  readonly errorOf?: (code: GatehouseErrorCode) => GrantErrorName | null;
}

/** `scope` (RFC 6749 §3.3): space-delimited, order irrelevant; the flows check each value. */
export function scopesOf(form: FormParams): string[] {
  return (form.get("scope") ?? "").split(" ").filter((s) => s !== "");
}

/** Seconds from now until an expiry the flow returned as a protobuf Timestamp. */
export function expiresIn(deps: FlowDeps, expiresAt: { seconds?: bigint } | undefined): number {
  return Math.max(0, Number(expiresAt?.seconds ?? 0n) - Math.floor(deps.now() / 1000));
}

/** The answer's `scope`, left out when empty. */
export function scopeMember(scopes: readonly string[] | undefined): { scope?: string } {
  return scopes && scopes.length > 0 ? { scope: scopes.join(" ") } : {};
}
