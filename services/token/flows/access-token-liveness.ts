import type { AccessTokenStatus } from "../store/token-store.ts";
import type { OwnAccessToken } from "./own-access-token.ts";

export type AccessTokenRevocation =
  | "token_revoked"
  | "session_revoked"
  | "subject_revoked"
  | "client_disabled";

/**
 * Why a signature-valid, unexpired access token of ours no longer counts, or null while it does:
 * its `jti` revoked, its session revoked or gone or moved past its `sv`, its subject revoked after
 * it was minted, or its client disabled after it was minted. The same rules the sidecars apply from
 * the revocation stream, judged here from Postgres, the source of truth.
 */
export function accessTokenRevocation(
  token: OwnAccessToken,
  status: AccessTokenStatus,
): AccessTokenRevocation | null {
  const issuedAtMs = token.iat * 1000;
  if (status.jtiRevoked) return "token_revoked";
  if (
    token.sid !== null &&
    (status.sessionRevokedAt !== null ||
      status.sessionVersion === null ||
      (token.sv ?? 0) < status.sessionVersion)
  ) {
    return "session_revoked";
  }
  if (status.subjectNotBefore !== null && issuedAtMs < status.subjectNotBefore.getTime()) {
    return "subject_revoked";
  }
  if (status.clientDisabledAt !== null && issuedAtMs < status.clientDisabledAt.getTime()) {
    return "client_disabled";
  }
  return null;
}
