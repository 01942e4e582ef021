import type { PrismaClient } from "../../gen/prisma/client.ts";
import type { Logger } from "../../shared/logging/index.ts";
import type { AuditActor } from "../audit/audit-record.ts";
import type { CallerAuthenticator } from "../clients/caller-authenticator.ts";
import type { KeyRing } from "../keys/key-ring.ts";
import type { SigningKeys } from "../keys/signing-keys.ts";

/** What the AdminService handlers work with; built once at start-up beside the TokenService deps. */
export interface AdminDeps {
  prisma: PrismaClient;
  /** This replica's key ring, reloaded after a key change so the JWKS it serves is current at once. */
  keys: Pick<KeyRing, "reload">;
  signingKeys: SigningKeys;
  /** Told to forget a client's cached credentials after the client changes. */
  authenticator: CallerAuthenticator;
  now: () => number;
  /** Publishes committed revocation events (client_disabled, key_revoked); true when they are out. */
  publish(eventIds: readonly string[]): Promise<boolean>;
  log: Logger;
  /** GATEHOUSE_MAX_ACCESS_TOKEN_TTL in seconds: the upper bound of a client's access_token_ttl. */
  maxAccessTokenTtlSeconds: number;
  /** GATEHOUSE_TRUSTED_ISSUERS by issuer URL: what a client's federated_issuer may name. None when absent. */
  trustedIssuers?: readonly string[];
}

/** The admin calling an RPC, as handlers need it. */
export interface AdminCaller {
  clientId: string;
  requestId: string;
  /** The caller as an audit actor (`client:<id>` and the request id). */
  by: AuditActor;
}
