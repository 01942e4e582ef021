export type { CanonicalPathOptions } from "./canonical-path.ts";
export { canonicalPath, isCanonical, rawPathOf } from "./canonical-path.ts";
export type { Policy } from "./compile-policy.ts";
export { AUTHENTICATED_DEFAULT, compilePolicy, defaultPolicy } from "./compile-policy.ts";

export { PolicyError } from "./policy-document.ts";

export { watchPolicy } from "./watch-policy.ts";
