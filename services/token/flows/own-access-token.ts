import { errors, type JWTPayload, jwtVerify } from "jose";
import type { KeyRing } from "../keys/key-ring.ts";
import { RESERVED_CLAIMS } from "../tokens/access-token-claims.ts";

export interface OwnAccessToken {
  jti: string;
  sub: string;
  clientId: string;
  sid: string | null;
  sv: number | null;
  aud: string[];
  scopes: string[];
  iat: number;
  exp: number;
  tenant: string | null;
  /** RFC 8693 `act` and `may_act` as signed; read by token exchange only. */
  act: unknown;
  mayAct: unknown;
  /** The client's custom claims: every claim that is not one we set ourselves. */
  custom: Record<string, unknown>;
}

export type OwnTokenResult = { ok: true; token: OwnAccessToken } | { ok: false; expired: boolean };

/**
 * Checks that an access token is one we issued — signed by a published key of ours, our issuer, typ
 * at+jwt — for Revoke, Introspect and Exchange. Cold path, so jose does the work. `now` (epoch ms) is the
 * service's clock, so expiry is judged on the same clock that issued the token.
 */
export async function readOwnAccessToken(
  keys: KeyRing,
  issuer: string,
  token: string,
  now: number,
): Promise<OwnTokenResult> {
  let payload: JWTPayload;
  try {
    ({ payload } = await jwtVerify(
      token,
      (header) => {
        const k = header.kid ? keys.verificationKey(header.kid) : undefined;
        if (!k || k.algorithm !== header.alg) throw new errors.JWKSNoMatchingKey();
        return k.key;
      },
      { issuer, typ: "at+jwt", algorithms: ["EdDSA", "ES256", "RS256"], currentDate: new Date(now) },
    ));
  } catch (err) {
    return { ok: false, expired: err instanceof errors.JWTExpired };
  }
  const { jti, sub, client_id, sid, sv, aud, scope, iat, exp, tenant, act, may_act } = payload as JWTPayload &
    Record<string, unknown>;
  if (typeof jti !== "string" || typeof sub !== "string" || typeof client_id !== "string")
    return { ok: false, expired: false };
  return {
    ok: true,
    token: {
      jti,
      sub,
      clientId: client_id,
      sid: typeof sid === "string" ? sid : null,
      sv: typeof sv === "number" ? sv : null,
      aud: Array.isArray(aud) ? aud : typeof aud === "string" ? [aud] : [],
      scopes: typeof scope === "string" && scope !== "" ? scope.split(" ") : [],
      iat: typeof iat === "number" ? iat : 0,
      exp: typeof exp === "number" ? exp : 0,
      tenant: typeof tenant === "string" ? tenant : null,
      act,
      mayAct: may_act,
      custom: Object.fromEntries(Object.entries(payload).filter(([name]) => !RESERVED_CLAIMS.has(name))),
    },
  };
}
