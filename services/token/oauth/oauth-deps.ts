import type { CallerAuthenticator } from "../clients/caller-authenticator.ts";
import type { CallerGate } from "../clients/caller-gate.ts";
import type { ClientRecord } from "../clients/client-record.ts";
import type { FlowDeps } from "../flows/flow-deps.ts";
import type { ClientAuthentication } from "./client-authentication.ts";

/** What the OAuth endpoints work with: the flows' deps and the same caller gate as the RPCs. */
export interface OAuthDeps extends FlowDeps {
  authenticator: CallerAuthenticator;
  gate: CallerGate;
}

/** Authenticates the client a form request names, through the RPCs' authenticator (its cache and bounds). */
export function authenticateClient(deps: OAuthDeps, auth: ClientAuthentication): () => Promise<ClientRecord> {
  return () =>
    auth.method === "none"
      ? deps.authenticator.authenticate(undefined)
      : deps.authenticator.authenticateCredentials(auth.credentials);
}
