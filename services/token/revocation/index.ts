export { type OutboxDb, pgliteOutboxDb, poolOutboxDb } from "./outbox-db.ts";
export { outboxRowToEvent } from "./outbox-event.ts";
export { createOutboxRelay, type OutboxRelay, type OutboxRelayOptions } from "./outbox-relay.ts";
export { type RelayPassOutcome, RelayStageError } from "./relay-pass.ts";
