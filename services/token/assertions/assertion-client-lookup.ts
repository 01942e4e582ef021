import type { ClientRecord } from "../clients/client-record.ts";

/** A client with the keys it registered for private_key_jwt (both null when it registered none). */
interface KeyedClientRecord extends ClientRecord {
  jwks: string | null;
  jwksUri: string | null;
}

/** The reads the assertion authenticator needs; Prisma in production. */
export interface AssertionClientLookup {
  /** private_key_jwt: the client named by the assertion's `iss` (= `sub` = client_id). */
  findKeyedClient(id: string): Promise<KeyedClientRecord | null>;
  /** Federated: the one client registered for this (trusted issuer, `sub`). */
  findFederatedClient(issuer: string, subject: string): Promise<ClientRecord | null>;
}
