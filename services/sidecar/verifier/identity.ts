/** Who a verified access token speaks for: what the sidecar hands to the app. Frozen; shared between requests. */
export interface Identity {
  readonly subject: string;
  readonly clientId: string;
  readonly scopes: readonly string[];
  readonly audience: readonly string[];
  readonly sessionId?: string;
  readonly sessionVersion?: number;
  readonly tenant?: string;
  /**
   * The `act` chain of an exchanged token (RFC 8693 §4.1): each actor's `sub`, outermost first, so
   * `actors[0]` is the service that called with it. Absent when the token has no `act`.
   */
  readonly actors?: readonly string[];
  readonly jti: string;
  /** `exp`, epoch seconds. */
  readonly expiresAt: number;
  /** `iat`, epoch seconds. */
  readonly issuedAt: number;
  /** The `kid` of the key that signed the token. */
  readonly kid: string;
  /** The whole payload, deep-frozen, custom claims included. */
  readonly claims: Readonly<Record<string, unknown>>;
  /** The token itself, only when the verifier was created with `exposeToken: true`. */
  readonly token?: string;
}

/** What a route asks of a token beyond being valid. */
export interface Requirement {
  /** The token's `aud` must name one of these; absent or empty: the verifier's own audiences. */
  readonly audiences?: readonly string[] | undefined;
  readonly scopes?:
    | {
        /** Every one of these scopes. */
        readonly allOf?: readonly string[] | undefined;
        /** At least one of these scopes. */
        readonly anyOf?: readonly string[] | undefined;
      }
    | undefined;
  /** The token's immediate actor (`act.sub`) must be one of these; absent: any caller, actor or none. */
  readonly actors?: readonly string[] | undefined;
}
