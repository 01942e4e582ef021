export type { VerifiedToken } from "./claim-checks.ts";
export type { Decision, KeyResolver, Verifier, VerifierOptions } from "./create-verifier.ts";
export { createVerifier } from "./create-verifier.ts";
export type { Identity, Requirement } from "./identity.ts";
export type { AuthenticatorOptions, PolicySource, RequestLike } from "./in-process.ts";
export {
  bearerToken,
  createAuthInterceptor,
  createRequestAuthenticator,
  identityKey,
  toConnectError,
} from "./in-process.ts";
export { MAX_TOKEN_LENGTH } from "./token-parts.ts";
