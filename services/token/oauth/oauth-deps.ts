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
  return () => {
    switch (auth.method) {
      case "none":
        return deps.authenticator.authenticate(undefined);
      case "private_key_jwt":
        return deps.authenticator.authenticateAssertion(auth.assertion, auth.clientId);
      default:
        return deps.authenticator.authenticateCredentials(auth.credentials);
    }
  };
}
