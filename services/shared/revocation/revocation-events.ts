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

/**
 * Units: `at` and `notBefore` are epoch milliseconds, `until` is epoch seconds (like `exp`).
 * `subject_revoked` and `client_disabled` revoke every token whose `iat * 1000 < notBefore`; a token
 * issued in the same second as the cut-off survives only if `notBefore` was rounded down to that
 * second, so the writer picks the rounding. `session_version` revokes tokens of `sid` whose `sv` is
 * below `minVersion`.
 */
export type RevocationEvent =
  | (EventBase & { type: "token_revoked"; jti: string })
  | (EventBase & { type: "session_revoked"; sid: string })
  | (EventBase & { type: "session_version"; sid: string; minVersion: number })
  | (EventBase & { type: "subject_revoked"; sub: string; notBefore: number })
  | (EventBase & { type: "client_disabled"; clientId: string; notBefore: number })
  | (EventBase & { type: "key_revoked"; kid: string });
