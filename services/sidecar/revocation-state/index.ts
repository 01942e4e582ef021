export type { MemoryRevocationState } from "./memory-revocation-state.ts";
export { createMemoryRevocationState } from "./memory-revocation-state.ts";
export type { RevokableToken } from "./revocation-state.ts";
