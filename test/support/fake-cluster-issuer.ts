import http from "node:http";
import type { AddressInfo } from "node:net";
import { exportJWK, generateKeyPair, type JWK, type JWTPayload, SignJWT } from "jose";

type CryptoKey = Awaited<ReturnType<typeof generateKeyPair>>["privateKey"];

type Alg = "EdDSA" | "ES256" | "RS256";

/** A key pair and its public JWK, as a signer of test assertions holds them. */
export interface TestSigningKey {
  kid: string;
  alg: Alg;
  privateKey: CryptoKey;
  publicJwk: JWK;
}

export async function testSigningKey(kid: string, alg: Alg = "ES256"): Promise<TestSigningKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  return { kid, alg, privateKey, publicJwk: { ...(await exportJWK(publicKey)), kid, use: "sig" } };
}

/** Signs claims with a key, the header naming `kid` and `alg` (override both to forge mismatches). */
export function signAssertion(
  claims: JWTPayload,
  key: TestSigningKey,
  header: { kid?: string; alg?: string } = {},
): Promise<string> {
  return new SignJWT(claims)
    .setProtectedHeader({ alg: header.alg ?? key.alg, kid: header.kid ?? key.kid, typ: "JWT" })
    .sign(key.privateKey);
}

/** A loopback HTTP server answering GETs with JSON documents a test sets by path. */
export interface JsonServer {
  readonly origin: string;
  set(path: string, body: unknown): void;
  /** While down, every request is answered 503 (the issuer's API server is unreachable). */
  setDown(down: boolean): void;
  /** GETs served per path so far. */
  hits(path: string): number;
  close(): Promise<void>;
}

export async function startJsonServer(): Promise<JsonServer> {
  const docs = new Map<string, string>();
  const counts = new Map<string, number>();
  let down = false;
  const server = http.createServer((req, res) => {
    const path = req.url ?? "/";
    counts.set(path, (counts.get(path) ?? 0) + 1);
    if (down) {
      res.writeHead(503).end();
      return;
    }
    const body = docs.get(path);
    if (body === undefined) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { "content-type": "application/json" }).end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    origin,
    set: (path, body) => docs.set(path, JSON.stringify(body)),
    setDown(value) {
      down = value;
    },
    hits: (path) => counts.get(path) ?? 0,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export interface FakeClusterIssuer {
  /** `http://127.0.0.1:<port>/cluster`: what `iss` says and what discovery is found under. */
  readonly issuer: string;
  readonly server: JsonServer;
  /** The key tokens are signed with now. */
  current(): TestSigningKey;
  /** A new key signs from now on; the JWKS serves only it (the old one is gone). */
  rotate(): Promise<TestSigningKey>;
  /**
   * A projected service-account token as the kubelet gets it: `sub`
   * system:serviceaccount:<ns>:<name>, `aud`, `iat`/`nbf` = now, `exp` = now + lifetime (1 h).
   */
  mint(
    account: { namespace: string; name: string },
    options: {
      audience: string | string[];
      nowS: number;
      lifetimeS?: number;
      key?: TestSigningKey;
      header?: { kid?: string; alg?: string };
    },
  ): Promise<string>;
  close(): Promise<void>;
}

/**
 * A Kubernetes cluster's service-account issuer, made by the test: ES256 keys, OpenID discovery at
 * `<issuer>/.well-known/openid-configuration` pointing at its JWKS, on a loopback server.
 */
export async function startFakeClusterIssuer(): Promise<FakeClusterIssuer> {
  const server = await startJsonServer();
  const issuer = `${server.origin}/cluster`;
  let generation = 1;
  let key = await testSigningKey(`cluster-${generation}`);
  server.set("/cluster/.well-known/openid-configuration", {
    issuer,
    jwks_uri: `${server.origin}/cluster/openid/v1/jwks`,
    response_types_supported: ["id_token"],
    subject_types_supported: ["public"],
    id_token_signing_alg_values_supported: ["ES256"],
  });
  const publish = () => server.set("/cluster/openid/v1/jwks", { keys: [key.publicJwk] });
  publish();
  return {
    issuer,
    server,
    current: () => key,
    async rotate() {
      generation += 1;
      key = await testSigningKey(`cluster-${generation}`);
      publish();
      return key;
    },
    mint({ namespace, name }, options) {
      const lifetimeS = options.lifetimeS ?? 3600;
      const iat = Math.floor(options.nowS);
      return signAssertion(
        {
          iss: issuer,
          sub: `system:serviceaccount:${namespace}:${name}`,
          aud: options.audience,
          iat,
          nbf: iat,
          exp: iat + lifetimeS,
          "kubernetes.io": {
            namespace,
            serviceaccount: { name, uid: crypto.randomUUID() },
            pod: { name: `${name}-7d9f8`, uid: crypto.randomUUID() },
          },
        },
        options.key ?? key,
        options.header,
      );
    },
    close: () => server.close(),
  };
}
