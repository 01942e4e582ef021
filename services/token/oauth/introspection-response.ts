import type { MessageInitShape } from "@bufbuild/protobuf";
import type { IntrospectResponseSchema } from "../../gen/proto/gatehouse/v1/token_service_pb.ts";

type IntrospectResult = MessageInitShape<typeof IntrospectResponseSchema>;

/** The media type of a signed introspection answer (RFC 9701 §4). */
export const INTROSPECTION_JWT_TYPE = "application/token-introspection+jwt";

const seconds = (t: { seconds?: bigint } | undefined) => Number(t?.seconds ?? 0n);

/**
 * The Introspect flow's answer as RFC 7662 §2.2 members. Anything not active is exactly
 * `{"active": false}`, whatever the reason, so the answer tells nothing about why. `nbf` is `iat`:
 * our tokens carry no `nbf`, and verifiers refuse a token used before its `iat`.
 */
export function rfc7662Response(result: IntrospectResult, issuer: string): Record<string, unknown> {
  if (!result.active) return { active: false };
  const iat = seconds(result.issuedAt);
  return {
    active: true,
    ...(result.scopes && result.scopes.length > 0 ? { scope: result.scopes.join(" ") } : {}),
    client_id: result.clientId,
    sub: result.subject,
    // As the token spells it: one audience as a string (RFC 7519 §4.1.3).
    aud: result.audience?.length === 1 ? result.audience[0] : result.audience,
    iss: issuer,
    exp: seconds(result.expiresAt),
    iat,
    nbf: iat,
    token_type: result.tokenType,
    ...(result.jti ? { jti: result.jti } : {}),
    ...(result.sessionId ? { sid: result.sessionId } : {}),
  };
}

/**
 * The claims of an RFC 9701 signed answer: who says it (`iss`), to whom (`aud`, the calling
 * client), when, and the RFC 7662 answer itself under `token_introspection`.
 */
export function introspectionJwtClaims(
  answer: Record<string, unknown>,
  issuer: string,
  callerClientId: string,
  nowMs: number,
): Record<string, unknown> {
  return { iss: issuer, aud: callerClientId, iat: Math.floor(nowMs / 1000), token_introspection: answer };
}

/** Whether an `accept` header asks for the signed answer (a plain substring match over its media types). */
export function wantsIntrospectionJwt(accept: string | undefined): boolean {
  if (accept === undefined) return false;
  return accept
    .split(",")
    .some((part) => part.split(";")[0]!.trim().toLowerCase() === INTROSPECTION_JWT_TYPE);
}
