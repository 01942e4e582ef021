export { backoffDelay, sleep } from "./backoff.ts";
export { createInProcessBus, type InProcessBus, type InProcessBusOptions } from "./in-process-bus.ts";
export { type BusLogger, createRedisBus, type RedisBusOptions } from "./redis-bus.ts";
export type { AppendOptions, BusEntry, ReadOptions, RevocationBus, StreamInfo } from "./revocation-bus.ts";
export {
  decodeRevocationEntry,
  ENTRY_FIELD,
  encodeRevocationEntry,
  isRevocationEvent,
  toRevocationEvent,
} from "./revocation-entry.ts";
export type { RevocationEvent, RevocationEventType, RevocationPayload } from "./revocation-events.ts";
export { REVOCATION_EVENT_TYPES } from "./revocation-events.ts";
export { compareStreamIds, laterStreamId, parseStreamId, STREAM_START } from "./stream-id.ts";
