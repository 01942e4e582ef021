import { randomUUID } from "node:crypto";
import { generateSigningKey, privateKeyFromPkcs8 } from "../../services/token/keys/signing-key-material.ts";
import { buildAccessTokenClaims } from "../../services/token/tokens/access-token-claims.ts";
import { createAccessTokenSigner } from "../../services/token/tokens/access-token-signer.ts";
import { ISSUER } from "./sidecar-fixtures.ts";

export interface LocalIssuer {
  /** An access token as the token service signs it (no session, so no revocation lookup), valid 1 h. */
  mint(token: { subject: string; scopes: readonly string[]; audience?: readonly string[] }): string;
  /** Pass as the sidecar's `fetch`: answers every request with this issuer's JWKS. */
  fetch: typeof globalThis.fetch;
}

/**
 * Signs tokens in the test process with the token service's own signer and serves its JWKS through
 * an injected fetch: sidecar tests that only need valid tokens, without Postgres or a token service.
 */
export async function createLocalIssuer(): Promise<LocalIssuer> {
  const key = await generateSigningKey("EdDSA");
  const sign = createAccessTokenSigner({
    kid: key.kid,
    algorithm: key.algorithm,
    privateKey: privateKeyFromPkcs8(key.pkcs8),
  });
  const jwks = JSON.stringify({ keys: [key.publicJwk] });
  return {
    mint({ subject, scopes, audience = ["orders"] }) {
      return sign(
        buildAccessTokenClaims({
          issuer: ISSUER,
          subject,
          audience,
          clientId: "web",
          scopes,
          jti: randomUUID(),
          nowSeconds: Math.floor(Date.now() / 1000),
          ttlSeconds: 3600,
        }),
      );
    },
    fetch: async () =>
      new Response(jwks, {
        status: 200,
        headers: { "content-type": "application/json", "cache-control": "max-age=300" },
      }),
  };
}
