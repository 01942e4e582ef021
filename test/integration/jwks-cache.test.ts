import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { GatehouseError } from "../../services/shared/errors/gatehouse-error.ts";
import { createJwksCache, type JwksCache, type JwksCacheOptions } from "../../services/sidecar/jwks/index.ts";
import { createMemoryRevocationState } from "../../services/sidecar/revocation-state/index.ts";
import { createVerifier } from "../../services/sidecar/verifier/index.ts";
import {
  type GeneratedKey,
  generateSigningKey,
  privateKeyFromPkcs8,
} from "../../services/token/keys/signing-key-material.ts";
import { buildAccessTokenClaims } from "../../services/token/tokens/access-token-claims.ts";
import { createAccessTokenSigner } from "../../services/token/tokens/access-token-signer.ts";

/** A token service's JWKS endpoint whose answers the test controls, counting what it is asked. */
class JwksServer {
  keys: unknown[] = [];
  etag = '"v1"';
  cacheControl = "max-age=300";
  mode: "up" | "error" | "hang" = "up";
  requests = 0;
  notModified = 0;
  ifNoneMatch: (string | undefined)[] = [];
  private server: Server | undefined;
  url = "";

  async start(): Promise<void> {
    this.server = createServer((req, res) => this.handle(req, res));
    await new Promise<void>((resolve) => this.server!.listen(0, "127.0.0.1", resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/.well-known/jwks.json`;
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    this.requests++;
    this.ifNoneMatch.push(req.headers["if-none-match"]);
    if (this.mode === "hang") return;
    if (this.mode === "error") {
      res.writeHead(503).end("down");
      return;
    }
    const headers = {
      etag: this.etag,
      "cache-control": this.cacheControl,
      "content-type": "application/jwk-set+json",
    };
    if (req.headers["if-none-match"] === this.etag) {
      this.notModified++;
      res.writeHead(304, headers).end();
      return;
    }
    res.writeHead(200, headers).end(JSON.stringify({ keys: this.keys }));
  }

  publish(keys: unknown[], etag: string): void {
    this.keys = keys;
    this.etag = etag;
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    this.server = undefined;
  }
}

let keyA: GeneratedKey;
let keyB: GeneratedKey;
let keyC: GeneratedKey;
beforeAll(async () => {
  [keyA, keyB, keyC] = await Promise.all([
    generateSigningKey("EdDSA"),
    generateSigningKey("ES256"),
    generateSigningKey("EdDSA"),
  ]);
});

const servers: JwksServer[] = [];
const caches: JwksCache[] = [];
afterEach(async () => {
  for (const c of caches.splice(0)) c.stop();
  for (const s of servers.splice(0)) await s.stop();
});

async function setup(options: Partial<JwksCacheOptions> = {}, keys: GeneratedKey[] = [keyA]) {
  const server = new JwksServer();
  servers.push(server);
  server.publish(
    keys.map((k) => k.publicJwk),
    '"v1"',
  );
  await server.start();
  const clock = { now: 1_800_000_000_000 };
  const warnings: object[] = [];
  const cache = createJwksCache({
    url: server.url,
    cooldownMs: 30_000,
    now: () => clock.now,
    logger: { info: () => {}, warn: (o) => warnings.push(o), error: (o) => warnings.push(o) },
    ...options,
  });
  caches.push(cache);
  return { server, cache, clock, warnings };
}

const codeOf = async (f: () => unknown) => {
  try {
    await f();
    return "ok";
  } catch (err) {
    return err instanceof GatehouseError ? err.code : String(err);
  }
};

describe("JWKS cache against a real HTTP endpoint", () => {
  it("fetches at start and resolves keys by kid and algorithm", async () => {
    const { server, cache } = await setup({}, [keyA, keyB]);
    await cache.ready();
    expect(server.requests).toBe(1);
    expect(cache.keys()).toEqual([
      { kid: keyA.kid, alg: "EdDSA" },
      { kid: keyB.kid, alg: "ES256" },
    ]);
    expect(cache.resolve(keyA.kid, "EdDSA").asymmetricKeyType).toBe("ed25519");
    expect(cache.resolve(keyB.kid, "ES256").asymmetricKeyType).toBe("ec");
    // A known kid asked for with another algorithm is algorithm confusion, not an unknown key.
    expect(await codeOf(() => cache.resolve(keyA.kid, "RS256"))).toBe("unsupported_algorithm");
    expect(cache.status()).toMatchObject({ ready: true, stale: false, keys: 2, fetches: 1 });
  });

  it("refreshes in the background before max-age runs out, revalidating with the ETag (304)", async () => {
    const { server, cache } = await setup({ minRefreshMs: 50 });
    server.cacheControl = "max-age=1"; // refresh at 80%: 800 ms
    await cache.ready();
    await expect.poll(() => server.requests >= 2, { timeout: 5000 }).toBeTruthy();
    expect(server.ifNoneMatch.slice(0, 2)).toEqual([undefined, '"v1"']);
    await expect.poll(() => server.notModified >= 1, { timeout: 5000 }).toBeTruthy();
    expect(cache.resolve(keyA.kid, "EdDSA")).toBeDefined();
  });

  it("answers 304 to an unchanged set and takes a changed one, keeping the ETag current", async () => {
    const { server, cache, clock } = await setup();
    await cache.ready();
    clock.now += 10_000;
    expect(cache.ageMs()).toBe(10_000);
    await cache.refreshNow();
    expect(server.notModified).toBe(1);
    expect(cache.ageMs()).toBe(0);
    server.publish([keyA.publicJwk, keyC.publicJwk], '"v2"');
    await cache.refreshNow();
    expect(server.ifNoneMatch.at(-1)).toBe('"v1"');
    expect(cache.keys().map((k) => k.kid)).toEqual([keyA.kid, keyC.kid]);
    await cache.refreshNow();
    expect(server.ifNoneMatch.at(-1)).toBe('"v2"');
    expect(server.notModified).toBe(2);
  });

  it("picks up a rotated-in key when a token names it, and the verifier accepts that token", async () => {
    const { server, cache, clock } = await setup();
    await cache.ready();
    server.publish([keyA.publicJwk, keyC.publicJwk], '"v2"');
    clock.now += 30_000; // the unknown-kid cooldown has passed
    const revocation = createMemoryRevocationState();
    revocation.markFresh(clock.now);
    const verifier = createVerifier({
      issuer: "https://auth.example.com",
      audiences: ["orders"],
      resolveKey: cache.keyResolver,
      revocation,
      now: () => clock.now,
    });
    const sign = createAccessTokenSigner({
      kid: keyC.kid,
      algorithm: "EdDSA",
      privateKey: privateKeyFromPkcs8(keyC.pkcs8),
    });
    const token = sign(
      buildAccessTokenClaims({
        issuer: "https://auth.example.com",
        subject: "user-1",
        audience: ["orders"],
        clientId: "web",
        scopes: [],
        jti: "j1",
        nowSeconds: Math.floor(clock.now / 1000),
        ttlSeconds: 600,
      }),
    );
    await expect(verifier.verify(token)).resolves.toMatchObject({ subject: "user-1", kid: keyC.kid });
    expect(server.requests).toBe(2);
  });

  it("keeps serving the last good set while the endpoint is down, flagged stale after maxStale", async () => {
    const { server, cache, clock, warnings } = await setup({ maxStaleMs: 60_000 });
    await cache.ready();
    server.mode = "error";
    await expect(cache.refreshNow()).rejects.toThrow(/HTTP 503/);
    expect(cache.resolve(keyA.kid, "EdDSA")).toBeDefined();
    await server.stop();
    await expect(cache.refreshNow()).rejects.toThrow();
    expect(cache.resolve(keyA.kid, "EdDSA")).toBeDefined();
    expect(cache.isStale()).toBe(false);
    clock.now += 60_001;
    expect(cache.isStale()).toBe(true);
    expect(cache.resolve(keyA.kid, "EdDSA")).toBeDefined();
    expect(cache.status()).toMatchObject({ ready: true, stale: true, keys: 1 });
    expect(cache.status().lastError).toBeDefined();
    expect(warnings.length).toBeGreaterThanOrEqual(2);
  });

  it("gives up on a hanging endpoint after timeoutMs", async () => {
    const { server, cache } = await setup({ timeoutMs: 200 });
    await cache.ready();
    server.mode = "hang";
    const started = Date.now();
    await expect(cache.refreshNow()).rejects.toThrow(/timed out after 200 ms/);
    expect(Date.now() - started).toBeLessThan(2000);
    expect(cache.resolve(keyA.kid, "EdDSA")).toBeDefined();
  });

  it("refetches at most once per cooldown however many unknown kids arrive", async () => {
    const { server, cache, clock } = await setup({ cooldownMs: 30_000 });
    await cache.ready();
    const flood = () =>
      Promise.all(
        Array.from({ length: 50 }, (_, i) =>
          codeOf(() => cache.keyResolver({ kid: `junk-${i}`, alg: "EdDSA" })),
        ),
      );

    // Right after the start fetch: within the cooldown, no refetch at all.
    expect(new Set(await flood())).toEqual(new Set(["unknown_key"]));
    expect(server.requests).toBe(1);

    clock.now += 30_000;
    expect(new Set(await flood())).toEqual(new Set(["unknown_key"]));
    expect(server.requests).toBe(2); // the 50 callers shared one fetch

    for (let i = 0; i < 100; i++)
      expect(await codeOf(() => cache.resolve(`junk-x${i}`, "EdDSA"))).toBe("unknown_key");
    await flood();
    expect(server.requests).toBe(2);

    clock.now += 29_999;
    await flood();
    expect(server.requests).toBe(2);
    clock.now += 1;
    await flood();
    expect(server.requests).toBe(3);
  });

  it("drops a key that disappeared from the set on the next successful refresh", async () => {
    const { server, cache } = await setup({}, [keyA, keyC]);
    await cache.ready();
    expect(cache.resolve(keyC.kid, "EdDSA")).toBeDefined();
    server.publish([keyA.publicJwk], '"v2"');
    await cache.refreshNow();
    expect(await codeOf(() => cache.resolve(keyC.kid, "EdDSA"))).toBe("unknown_key");
    expect(cache.keys().map((k) => k.kid)).toEqual([keyA.kid]);
  });

  it("skips bad keys with a warning and keeps the good ones; refuses a set with none", async () => {
    const { server, cache, warnings } = await setup();
    await cache.ready();
    const jwk = keyA.publicJwk;
    server.publish(
      [
        { ...keyC.publicJwk, kid: "private", d: "AAAA" },
        { ...keyC.publicJwk, kid: "encryption", use: "enc" },
        { ...keyC.publicJwk, kid: "wrong-alg", alg: "ES256" },
        { ...keyC.publicJwk, kid: "hmac-alg", alg: "HS256" },
        { kty: "oct", kid: "secret", k: "c2VjcmV0" },
        { ...keyC.publicJwk, kid: "no-verify", key_ops: ["encrypt"] },
        { ...keyC.publicJwk, kid: "bad-point", x: "AAAA" },
        { ...keyC.publicJwk, kid: jwk.kid },
        "not an object",
        jwk,
        { ...keyC.publicJwk, alg: undefined, use: undefined },
      ],
      '"v2"',
    );
    await cache.refreshNow();
    expect(cache.keys().map((k) => k.kid)).toEqual([jwk.kid, keyC.kid]);
    expect(warnings.map((w) => (w as { kid?: string }).kid)).toEqual([
      "private",
      "encryption",
      "wrong-alg",
      "hmac-alg",
      "secret",
      "no-verify",
      "bad-point",
      undefined,
      jwk.kid,
    ]);

    server.publish([{ ...keyC.publicJwk, d: "AAAA" }], '"v3"');
    await expect(cache.refreshNow()).rejects.toThrow(/no usable key/);
    expect(cache.keys()).toHaveLength(2);
  });

  it("takes a function as its source (the gRPC GetJwks variant)", async () => {
    let calls = 0;
    const cache = createJwksCache({
      source: async ({ etag }) => {
        calls++;
        return etag === "e1"
          ? { status: "not_modified" }
          : { status: "ok", document: { keys: [keyB.publicJwk] }, etag: "e1", maxAgeMs: 60_000 };
      },
    });
    caches.push(cache);
    await cache.ready();
    expect(cache.resolve(keyB.kid, "ES256")).toBeDefined();
    await cache.refreshNow();
    expect(calls).toBe(2);
    expect(cache.keys()).toHaveLength(1);
    expect(() => createJwksCache({})).toThrow(TypeError);
  });
});
