import { spawn } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { decodeJwt, exportJWK, generateKeyPair, type JWTPayload } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AdminService, ClientRole } from "../../services/gen/proto/gatehouse/v1/admin_service_pb.ts";
import { createLogger } from "../../services/shared/logging/index.ts";
import { JWT_BEARER_ASSERTION_TYPE } from "../../services/token/assertions/assertion-rules.ts";
import { basicAuthorization } from "../../services/token/clients/basic-credentials.ts";
import { type RunningTokenService, startTokenService } from "../../services/token/token-service.ts";
import {
  type FakeClusterIssuer,
  type JsonServer,
  signAssertion,
  startFakeClusterIssuer,
  startJsonServer,
  type TestSigningKey,
  testSigningKey,
} from "../support/fake-cluster-issuer.ts";
import { type OAuthTestService, startOAuthTestService } from "../support/oauth-service.ts";
import { type GrpcFailure, grpcServiceClient, grpcTokenClient } from "../support/token-clients.ts";
import { createTestClient } from "../support/token-fixtures.ts";
import { testServiceSettings } from "../support/token-service-settings.ts";

/**
 * Client assertions end to end (issue 17): a fake cluster issuer (its own keys, discovery and JWKS
 * on a loopback server) mints service-account tokens, and callers authenticate with them on the
 * RPCs (`x-gatehouse-client-assertion`) and on /oauth2/token; private_key_jwt clients sign their own.
 */
let t: OAuthTestService;
let cluster: FakeClusterIssuer;
let untrusted: FakeClusterIssuer;
let clientKeys: JsonServer;
let inlineKey: TestSigningKey;
let remoteKey: TestSigningKey;

const ORDERS = { namespace: "shop", name: "orders" };
const MASTER_KEY = randomBytes(32);

async function assertionClient(id: string, trust: Record<string, string>, roles = ["service", "issuer"]) {
  await createTestClient(t.tdb.db.prisma, { id, roles });
  await t.tdb.db.prisma.client.update({ where: { id }, data: { secretHash: null, ...trust } });
}

beforeAll(async () => {
  cluster = await startFakeClusterIssuer();
  untrusted = await startFakeClusterIssuer();
  clientKeys = await startJsonServer();
  t = await startOAuthTestService(
    [
      { id: "svc", roles: ["service", "issuer"] },
      { id: "root", roles: ["admin"] },
    ],
    {
      trustedIssuers: [{ issuer: cluster.issuer }],
      assertionJwksCooldown: 0,
      masterKey: MASTER_KEY,
    },
  );
  await assertionClient("orders", {
    federatedIssuer: cluster.issuer,
    federatedSubject: "system:serviceaccount:shop:orders",
  });
  inlineKey = await testSigningKey("pk-1", "EdDSA");
  await assertionClient("pk-inline", { jwks: JSON.stringify({ keys: [inlineKey.publicJwk] }) });
  remoteKey = await testSigningKey("remote-1", "RS256");
  clientKeys.set("/pk-remote/jwks", { keys: [remoteKey.publicJwk] });
  await assertionClient("pk-remote", { jwksUri: `${clientKeys.origin}/pk-remote/jwks` });
}, 60_000);

afterAll(async () => {
  await t?.stop();
  await cluster?.close();
  await untrusted?.close();
  await clientKeys?.close();
});

const nowS = () => Math.floor(t.clock.now() / 1000);
const saToken = (account = ORDERS, options: Partial<Parameters<FakeClusterIssuer["mint"]>[1]> = {}) =>
  cluster.mint(account, { audience: t.issuer, nowS: nowS(), ...options });

/** A private_key_jwt assertion (RFC 7523 §3): iss = sub = client id, aud the token endpoint, fresh jti. */
function ownAssertion(clientId: string, key: TestSigningKey, claims: JWTPayload = {}, header = {}) {
  return signAssertion(
    {
      iss: clientId,
      sub: clientId,
      aud: `${t.issuer}/oauth2/token`,
      jti: randomUUID(),
      iat: nowS(),
      exp: nowS() + 60,
      ...claims,
    },
    key,
    header,
  );
}

/** IssueServiceToken over native gRPC with the assertion in metadata. */
function serviceTokenWith(assertion: string) {
  const client = grpcTokenClient(t.service.grpcPort, { assertion: () => assertion });
  return client
    .issueServiceToken({ audience: ["orders"], scopes: ["orders:read"] })
    .finally(() => client.close());
}

async function refusal(assertion: string): Promise<GrpcFailure> {
  return serviceTokenWith(assertion).then(
    () => {
      throw new Error("expected a refusal");
    },
    (err: GrpcFailure) => err,
  );
}

async function tokenEndpoint(fields: Record<string, string>, headers: Record<string, string> = {}) {
  const res = await fetch(`${t.issuer}/oauth2/token`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded", ...headers },
    body: new URLSearchParams(fields),
  });
  return { status: res.status, json: (await res.json()) as Record<string, string> };
}

const assertionForm = (assertion: string) => ({
  grant_type: "client_credentials",
  client_assertion_type: JWT_BEARER_ASSERTION_TYPE,
  client_assertion: assertion,
  audience: "orders",
  scope: "orders:read",
});

describe("federated client authentication (Kubernetes service-account tokens)", () => {
  it("authenticates the RPCs with a service-account token in x-gatehouse-client-assertion", async () => {
    const res = await serviceTokenWith(await saToken());
    expect(decodeJwt(res.accessToken)).toMatchObject({ sub: "orders", client_id: "orders", aud: "orders" });
  });

  it("authenticates /oauth2/token with client_assertion (client_id optional, and checked when given)", async () => {
    const assertion = await saToken();
    const ok = await tokenEndpoint(assertionForm(assertion));
    expect(ok.status).toBe(200);
    expect(decodeJwt(ok.json.access_token!)).toMatchObject({ client_id: "orders" });
    const named = await tokenEndpoint({ ...assertionForm(assertion), client_id: "orders" });
    expect(named.status).toBe(200);
    const other = await tokenEndpoint({ ...assertionForm(assertion), client_id: "svc" });
    expect(other).toMatchObject({ status: 400, json: { error: "invalid_request" } });
  });

  it("refreshes a session with the assertion as the caller's credential", async () => {
    const client = grpcTokenClient(t.service.grpcPort, { assertion: () => assertion });
    let assertion = await saToken();
    try {
      const issued = await client.issue({ subject: "user-1", audience: ["orders"], scopes: ["orders:read"] });
      // The kubelet rotated the token meanwhile: the client re-reads it per call.
      t.clock.advance(1000);
      assertion = await saToken();
      const refreshed = await client.refresh({ refreshToken: issued.refreshToken });
      expect(refreshed.refreshToken).not.toBe(issued.refreshToken);
    } finally {
      t.clock.set(t.clock.now() - 1000);
      client.close();
    }
  });

  it("refuses a token for another audience (assertion_wrong_audience)", async () => {
    expect(
      await refusal(await saToken(ORDERS, { audience: "https://kubernetes.default.svc" })),
    ).toMatchObject({
      code: 16,
      reason: "assertion_wrong_audience",
    });
  });

  it("refuses an expired token (assertion_expired)", async () => {
    expect(await refusal(await saToken(ORDERS, { nowS: nowS() - 7200 }))).toMatchObject({
      reason: "assertion_expired",
    });
  });

  it("refuses a token living longer than the maximum (assertion_lifetime_too_long)", async () => {
    expect(await refusal(await saToken(ORDERS, { lifetimeS: 2 * 3600 }))).toMatchObject({
      reason: "assertion_lifetime_too_long",
    });
  });

  it("refuses a token issued in the future (assertion_not_yet_valid)", async () => {
    expect(await refusal(await saToken(ORDERS, { nowS: nowS() + 600 }))).toMatchObject({
      reason: "assertion_not_yet_valid",
    });
  });

  it("refuses another namespace's service account of the same name (assertion_subject_mismatch)", async () => {
    expect(await refusal(await saToken({ namespace: "billing", name: "orders" }))).toMatchObject({
      reason: "assertion_subject_mismatch",
    });
  });

  it("refuses an unknown kid (assertion_unknown_key)", async () => {
    const stranger = await testSigningKey("not-published");
    expect(await refusal(await saToken(ORDERS, { key: stranger }))).toMatchObject({
      reason: "assertion_unknown_key",
    });
  });

  it("refuses an algorithm other than its key's, or one not allowed (assertion_algorithm_mismatch)", async () => {
    const rsa = await testSigningKey(cluster.current().kid, "RS256");
    expect(await refusal(await saToken(ORDERS, { key: rsa }))).toMatchObject({
      reason: "assertion_algorithm_mismatch",
    });
    const forged = await saToken();
    const [, payload] = forged.split(".");
    const hs = `${Buffer.from(JSON.stringify({ alg: "HS256", kid: cluster.current().kid })).toString("base64url")}.${payload}.c2ln`;
    expect(await refusal(hs)).toMatchObject({ reason: "assertion_algorithm_mismatch" });
    const none = `${Buffer.from(JSON.stringify({ alg: "none", kid: cluster.current().kid })).toString("base64url")}.${payload}.`;
    expect(await refusal(none)).toMatchObject({ reason: "assertion_algorithm_mismatch" });
  });

  it("refuses a signature by another key under a published kid (assertion_bad_signature)", async () => {
    const impostor = await testSigningKey(cluster.current().kid, "ES256");
    expect(await refusal(await saToken(ORDERS, { key: impostor }))).toMatchObject({
      reason: "assertion_bad_signature",
    });
  });

  it("refuses a token from an issuer that is not trusted (assertion_untrusted_issuer)", async () => {
    const token = await untrusted.mint(ORDERS, { audience: t.issuer, nowS: nowS() });
    expect(await refusal(token)).toMatchObject({ reason: "assertion_untrusted_issuer" });
  });

  it("answers every refusal on /oauth2/token as invalid_client with the reason first", async () => {
    const res = await tokenEndpoint(assertionForm(await saToken(ORDERS, { audience: "elsewhere" })));
    expect(res.status).toBe(401);
    expect(res.json.error).toBe("invalid_client");
    expect(res.json.error_description).toMatch(/^assertion_wrong_audience: /);
  });

  it("follows the issuer's key rotation: the new kid is fetched, the removed one refused", async () => {
    const old = cluster.current();
    const before = cluster.server.hits("/cluster/openid/v1/jwks");
    await cluster.rotate();
    await expect(serviceTokenWith(await saToken())).resolves.toHaveProperty("accessToken");
    expect(cluster.server.hits("/cluster/openid/v1/jwks")).toBeGreaterThan(before);
    t.clock.advance(1000); // a token not seen before, so not answered from the verified cache
    try {
      expect(await refusal(await saToken(ORDERS, { key: old }))).toMatchObject({
        reason: "assertion_unknown_key",
      });
    } finally {
      t.clock.set(t.clock.now() - 1000);
    }
  });

  it("keeps verifying with the last good key set while the issuer is down", async () => {
    cluster.server.setDown(true);
    try {
      // An unknown kid makes the cache refetch (and fail); the known key keeps working meanwhile.
      const stranger = await testSigningKey("while-down");
      expect(await refusal(await saToken(ORDERS, { key: stranger }))).toMatchObject({
        reason: "assertion_unknown_key",
      });
      t.clock.advance(2000);
      await expect(serviceTokenWith(await saToken())).resolves.toHaveProperty("accessToken");
    } finally {
      t.clock.set(t.clock.now() - 2000);
      cluster.server.setDown(false);
    }
  });

  it("refuses Basic authentication for a client with no secret, and two methods at once", async () => {
    const basic = grpcTokenClient(t.service.grpcPort, { id: "orders", secret: "anything" });
    await expect(basic.issueServiceToken({ audience: ["orders"] })).rejects.toMatchObject({
      reason: "invalid_client",
    });
    basic.close();
    const both = await tokenEndpoint(assertionForm(await saToken()), {
      authorization: basicAuthorization("svc", t.creds.svc!.secret),
    });
    expect(both).toMatchObject({ status: 400, json: { error: "invalid_request" } });
  });

  it("refuses a verified token once its client is disabled", async () => {
    const assertion = await saToken();
    await serviceTokenWith(assertion);
    await t.tdb.db.prisma.client.update({ where: { id: "orders" }, data: { disabledAt: new Date() } });
    try {
      await expect
        .poll(() => refusal(assertion).then((f) => f.reason), { timeout: 10_000 })
        .toBe("invalid_client");
    } finally {
      await t.tdb.db.prisma.client.update({ where: { id: "orders" }, data: { disabledAt: null } });
    }
  });
});

describe("private_key_jwt", () => {
  it("authenticates with the client's inline JWKS, on the RPCs and /oauth2/token", async () => {
    const rpc = await serviceTokenWith(await ownAssertion("pk-inline", inlineKey));
    expect(decodeJwt(rpc.accessToken)).toMatchObject({ client_id: "pk-inline" });
    const form = await tokenEndpoint({
      ...assertionForm(await ownAssertion("pk-inline", inlineKey)),
      client_id: "pk-inline",
    });
    expect(form.status).toBe(200);
  });

  it("authenticates with keys at the client's jwks_uri, and follows their rotation", async () => {
    await expect(serviceTokenWith(await ownAssertion("pk-remote", remoteKey))).resolves.toHaveProperty(
      "accessToken",
    );
    const next = await testSigningKey("remote-2", "ES256");
    clientKeys.set("/pk-remote/jwks", { keys: [next.publicJwk] });
    await expect(serviceTokenWith(await ownAssertion("pk-remote", next))).resolves.toHaveProperty(
      "accessToken",
    );
  });

  it("authenticates /oauth2/introspect with an assertion too", async () => {
    await assertionClient("pk-introspector", { jwks: JSON.stringify({ keys: [inlineKey.publicJwk] }) }, [
      "introspector",
    ]);
    const { accessToken } = await serviceTokenWith(await saToken());
    const res = await fetch(`${t.issuer}/oauth2/introspect`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({
        token: accessToken,
        client_assertion_type: JWT_BEARER_ASSERTION_TYPE,
        client_assertion: await ownAssertion("pk-introspector", inlineKey),
      }),
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ active: true, client_id: "orders" });
  });

  it("refuses a replayed jti, on this replica and on another (assertion_replayed)", async () => {
    const assertion = await ownAssertion("pk-inline", inlineKey);
    await serviceTokenWith(assertion);
    expect(await refusal(assertion)).toMatchObject({ reason: "assertion_replayed" });
    const replica: RunningTokenService = await startTokenService({
      settings: testServiceSettings({ issuer: t.issuer, masterKey: MASTER_KEY }),
      database: { kind: "postgres", url: t.tdb.url },
      logger: createLogger({ level: "silent", component: "replica", pretty: false }),
      now: t.clock.now,
    });
    try {
      const other = grpcTokenClient(replica.grpcPort, { assertion: () => assertion });
      await expect(other.issueServiceToken({ audience: ["orders"] })).rejects.toMatchObject({
        reason: "assertion_replayed",
      });
      other.close();
    } finally {
      await replica.shutdown();
    }
  });

  it("refuses sub other than iss, a missing jti, and an unknown client as issuer", async () => {
    expect(await refusal(await ownAssertion("pk-inline", inlineKey, { sub: "orders" }))).toMatchObject({
      reason: "assertion_subject_mismatch",
    });
    expect(await refusal(await ownAssertion("pk-inline", inlineKey, { jti: undefined }))).toMatchObject({
      reason: "assertion_malformed",
    });
    expect(await refusal(await ownAssertion("nobody", inlineKey))).toMatchObject({
      reason: "assertion_untrusted_issuer",
    });
    // A client with a secret and no keys cannot be named as an assertion's issuer either.
    expect(await refusal(await ownAssertion("svc", inlineKey))).toMatchObject({
      reason: "assertion_untrusted_issuer",
    });
  });

  it("never writes an assertion to the log, and counts them by source and outcome", async () => {
    expect(t.logLines.join("")).not.toMatch(/eyJ[A-Za-z0-9_-]{10,}\.eyJ/);
    expect(t.logLines.join("")).toContain("client assertion refused");
    const metrics = await t.service.metrics.metrics();
    for (const [source, outcome] of [
      ["federated", "ok"],
      ["federated", "assertion_wrong_audience"],
      ["private_key_jwt", "ok"],
      ["private_key_jwt", "assertion_replayed"],
      ["private_key_jwt", "assertion_untrusted_issuer"],
    ]) {
      expect(metrics).toMatch(
        new RegExp(
          `gatehouse_client_assertions_total\\{[^}]*source="${source}",outcome="${outcome}"[^}]*\\} [1-9]`,
        ),
      );
    }
  });
});

describe("registering trust sources (AdminService)", () => {
  const admin = () => grpcServiceClient(AdminService, t.service.grpcPort, t.creds.root!);
  const base = {
    name: "x",
    roles: [ClientRole.SERVICE],
    allowedAudiences: ["orders"],
    allowedScopes: ["orders:read"],
  };

  it("creates a client with no secret for a service account; its token works at once", async () => {
    const a = admin();
    try {
      const res = await a.createClient({
        ...base,
        clientId: "payments",
        noSecret: true,
        federatedIssuer: cluster.issuer,
        federatedSubject: "system:serviceaccount:shop:payments",
      });
      expect(res.clientSecret).toBe("");
      expect(res.client).toMatchObject({
        hasSecret: false,
        federatedSubject: "system:serviceaccount:shop:payments",
      });
      const token = await saToken({ namespace: "shop", name: "payments" });
      await expect(serviceTokenWith(token)).resolves.toHaveProperty("accessToken");
    } finally {
      a.close();
    }
  });

  it("refuses private keys, two key sources, plain-http URIs, untrusted issuers and no secret without trust", async () => {
    const a = admin();
    const { privateKey } = await generateKeyPair("ES256", { extractable: true });
    const privateJwk = { ...(await exportJWK(privateKey)), kid: "p" };
    const refused = (req: object) =>
      a.createClient({ ...base, ...req }).then(
        () => "created",
        (f: GrpcFailure) => `${f.reason} ${f.metadata.field}`,
      );
    try {
      expect(await refused({ jwks: JSON.stringify({ keys: [privateJwk] }) })).toBe("invalid_request jwks");
      expect(
        await refused({
          jwks: JSON.stringify({ keys: [inlineKey.publicJwk] }),
          jwksUri: "https://keys.example/jwks",
        }),
      ).toBe("invalid_request jwks_uri");
      expect(await refused({ jwksUri: "http://keys.example/jwks" })).toBe("invalid_request jwks_uri");
      expect(
        await refused({ federatedIssuer: untrusted.issuer, federatedSubject: "system:serviceaccount:a:b" }),
      ).toBe("invalid_request federated_issuer");
      expect(await refused({ federatedIssuer: cluster.issuer })).toBe("invalid_request federated_subject");
      expect(await refused({ noSecret: true })).toBe("invalid_request no_secret");
      expect(
        await refused({
          federatedIssuer: cluster.issuer,
          federatedSubject: "system:serviceaccount:shop:orders",
        }),
      ).toBe("already_exists federated_subject");
    } finally {
      a.close();
    }
  });

  it("updates trust sources by update_mask, and keeps a secretless client with one", async () => {
    const a = admin();
    try {
      const key = await testSigningKey("upd-1", "ES256");
      await a.createClient({
        ...base,
        clientId: "rotating",
        noSecret: true,
        jwksUri: `${clientKeys.origin}/none`,
      });
      const updated = await a.updateClient({
        clientId: "rotating",
        jwks: JSON.stringify({ keys: [key.publicJwk] }),
        jwksUri: "",
        updateMask: { paths: ["jwks", "jwks_uri"] },
      });
      expect(updated.client).toMatchObject({ jwksUri: "", hasSecret: false });
      await expect(serviceTokenWith(await ownAssertion("rotating", key))).resolves.toHaveProperty(
        "accessToken",
      );
      await expect(
        a.updateClient({ clientId: "rotating", jwks: "", updateMask: { paths: ["jwks"] } }),
      ).rejects.toMatchObject({
        reason: "invalid_request",
      });
    } finally {
      a.close();
    }
  });
});

describe("gatehouse CLI --assertion-file", () => {
  function gatehouse(args: string[]) {
    return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
      const child = spawn(process.execPath, [join(import.meta.dirname, "../../bin/gatehouse.mjs"), ...args], {
        env: {
          PATH: process.env.PATH,
          HOME: process.env.HOME,
          GATEHOUSE_SERVER: `127.0.0.1:${t.service.grpcPort}`,
          GATEHOUSE_ADMIN_SERVER: `127.0.0.1:${t.service.adminPort}`,
        },
        stdio: ["ignore", "pipe", "pipe"],
      });
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (d) => {
        stdout += d;
      });
      child.stderr.on("data", (d) => {
        stderr += d;
      });
      child.on("error", reject);
      child.on("close", (code) => resolve({ code, stdout, stderr }));
    });
  }

  it("authenticates with the token in the file, read again when the kubelet has rotated it", async () => {
    await assertionClient(
      "ops-admin",
      { federatedIssuer: cluster.issuer, federatedSubject: "system:serviceaccount:ops:gatehouse-admin" },
      ["admin"],
    );
    const dir = mkdtempSync(join(tmpdir(), "gatehouse-assertion-"));
    const file = join(dir, "token");
    const account = { namespace: "ops", name: "gatehouse-admin" };
    try {
      writeFileSync(file, await saToken(account));
      const ok = await gatehouse(["clients", "get", "orders", "--json", "--assertion-file", file]);
      expect(ok.stderr).toBe("");
      expect(JSON.parse(ok.stdout)).toMatchObject({ client: { clientId: "orders", hasSecret: false } });
      writeFileSync(file, await saToken(account, { audience: "https://kubernetes.default.svc" }));
      const refused = await gatehouse(["clients", "get", "orders", "--assertion-file", file]);
      expect(refused.code).not.toBe(0);
      expect(refused.stderr).toContain("assertion_wrong_audience");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
