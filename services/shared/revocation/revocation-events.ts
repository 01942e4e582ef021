/**
 * Revocation events as the token service writes them to the outbox and sidecars apply them. Each
 * event matters until `until` (epoch seconds): after that every token it could affect has expired,
 * so the outbox, the Redis stream and the sidecars' state may all forget it.
 */
interface EventBase {
  /** UUID, unique per event; applying an event twice has the same effect as once. */
  id: string;
  /** When the revocation committed, epoch milliseconds. */
  at: number;
  /** Epoch seconds after which the event no longer matters. */
  until: number;
}

export type RevocationEvent =
  | (EventBase & { type: "token_revoked"; jti: string })
  | (EventBase & { type: "session_revoked"; sid: string })
  | (EventBase & { type: "session_version"; sid: string; minVersion: number })
  | (EventBase & { type: "subject_revoked"; sub: string; notBefore: number })
  | (EventBase & { type: "client_disabled"; clientId: string; notBefore: number })
  | (EventBase & { type: "key_revoked"; kid: string });

export type RevocationEventType = RevocationEvent["type"];

export const REVOCATION_EVENT_TYPES: readonly RevocationEventType[] = [
  "token_revoked",
  "session_revoked",
  "session_version",
  "subject_revoked",
  "client_disabled",
  "key_revoked",
];

/** The payload column of an outbox row: the event without its envelope fields. */
export type RevocationPayload<T extends RevocationEventType = RevocationEventType> = Omit<
  Extract<RevocationEvent, { type: T }>,
  keyof EventBase | "type"
>;
