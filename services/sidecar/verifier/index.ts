export type { KeyResolver, Verifier } from "./create-verifier.ts";
export { createVerifier } from "./create-verifier.ts";
export type { Identity, Requirement } from "./identity.ts";

export {
  bearerToken,
  createAuthInterceptor,
  createRequestAuthenticator,
  identityKey,
  toConnectError,
} from "./in-process.ts";
