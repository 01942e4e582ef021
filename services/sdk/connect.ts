/**
 * `gatehouse/connect`: a Connect server interceptor that verifies the bearer token of every call
 * and hands the claims to handlers under `identityKey`; route rules come from a policy document.
 */
export type { Policy } from "../sidecar/policy/compile-policy.ts";
export { compilePolicy } from "../sidecar/policy/compile-policy.ts";
export type { AuthenticatorOptions, PolicySource } from "../sidecar/verifier/in-process.ts";
export { createAuthInterceptor, identityKey } from "../sidecar/verifier/in-process.ts";
