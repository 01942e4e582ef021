/** A client (internal service) as the token service needs it at run time. */
export interface ClientRecord {
  id: string;
  name: string;
  /** Null: the client has no secret and authenticates only with assertions. */
  secretHash: string | null;
  /** During a secret rotation, the old secret keeps working until `previousSecretExpiresAt`. */
  previousSecretHash: string | null;
  previousSecretExpiresAt: Date | null;
  roles: string[];
  allowedAudiences: string[];
  allowedScopes: string[];
  allowedClaims: string[];
  /** Empty: no tenant may be set; `*`: any (flows/client-allow-lists.ts). */
  allowedTenants: string[];
  /** Empty: any subject. */
  allowedSubjectPrefixes: string[];
  accessTokenTtlSeconds: number;
  refreshIdleTtlSeconds: number;
  refreshAbsoluteTtlSeconds: number;
  refreshGraceSeconds: number;
  /** The client's own rate limit, replacing the service-wide ones; null: those apply. */
  rateLimitPerSecond: number | null;
  /** Its bucket size; null: the rate (at least 1). */
  rateLimitBurst: number | null;
  disabledAt: Date | null;
}

/** The narrow read the authenticator needs; Prisma in production, a map in unit tests. */
export interface ClientLookup {
  findClient(id: string): Promise<ClientRecord | null>;
}
