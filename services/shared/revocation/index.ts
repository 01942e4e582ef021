export { createRedisBus } from "./redis-bus.ts";
export type { RevocationBus } from "./revocation-bus.ts";
export { encodeRevocationEntry } from "./revocation-entry.ts";
export type { RevocationEvent } from "./revocation-events.ts";
