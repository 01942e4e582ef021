export type { CanonicalPath, CanonicalPathOptions, PathRefusalCode } from "./canonical-path.ts";
export { canonicalPath, isCanonical, rawPathOf } from "./canonical-path.ts";
export type { Policy, PolicyRequest, Rule } from "./compile-policy.ts";
export { AUTHENTICATED_DEFAULT, compilePolicy, defaultPolicy } from "./compile-policy.ts";
export type { PolicyProblem } from "./policy-document.ts";
export { PolicyError } from "./policy-document.ts";
export type { PolicyLogger, PolicyWatcher, WatchPolicyOptions } from "./watch-policy.ts";
export { watchPolicy } from "./watch-policy.ts";
