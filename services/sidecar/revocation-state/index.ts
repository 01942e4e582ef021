export type { MemoryRevocationState, MemoryRevocationStateOptions } from "./memory-revocation-state.ts";
export { createMemoryRevocationState } from "./memory-revocation-state.ts";
export type { RevocationCode, RevocationState, RevokableToken } from "./revocation-state.ts";
