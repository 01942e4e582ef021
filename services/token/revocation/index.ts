export { pgliteOutboxDb, poolOutboxDb } from "./outbox-db.ts";

export { createOutboxRelay, type OutboxRelay } from "./outbox-relay.ts";
