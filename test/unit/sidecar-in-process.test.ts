import { randomUUID } from "node:crypto";
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { beforeAll, describe, expect, it } from "vitest";
import { TokenService } from "../../services/gen/proto/gatehouse/v1/token_service_pb.ts";
import { ErrorInfoSchema } from "../../services/gen/proto/google/rpc/error_details_pb.ts";
import { GatehouseError } from "../../services/shared/errors/gatehouse-error.ts";
import { compilePolicy } from "../../services/sidecar/policy/index.ts";
import { createMemoryRevocationState } from "../../services/sidecar/revocation-state/index.ts";
import {
  bearerToken,
  createAuthInterceptor,
  createRequestAuthenticator,
  createVerifier,
  type Identity,
  identityKey,
  toConnectError,
  type Verifier,
} from "../../services/sidecar/verifier/index.ts";
import {
  generateSigningKey,
  privateKeyFromPkcs8,
  publicKeyFromJwk,
} from "../../services/token/keys/signing-key-material.ts";
import { buildAccessTokenClaims } from "../../services/token/tokens/access-token-claims.ts";
import { createAccessTokenSigner } from "../../services/token/tokens/access-token-signer.ts";

const ISSUER = "https://auth.example.com";
const NOW_S = 1_800_000_000;

let verifier: Verifier;
let mint: (scopes: string[]) => string;

beforeAll(async () => {
  const key = await generateSigningKey("EdDSA");
  const publicKey = publicKeyFromJwk(key.publicJwk);
  const sign = createAccessTokenSigner({
    kid: key.kid,
    algorithm: "EdDSA",
    privateKey: privateKeyFromPkcs8(key.pkcs8),
  });
  mint = (scopes) =>
    sign(
      buildAccessTokenClaims({
        issuer: ISSUER,
        subject: "user-1",
        audience: ["orders"],
        clientId: "web",
        scopes,
        jti: randomUUID(),
        nowSeconds: NOW_S,
        ttlSeconds: 600,
      }),
    );
  const revocation = createMemoryRevocationState();
  revocation.markFresh(NOW_S * 1000);
  verifier = createVerifier({
    issuer: ISSUER,
    audiences: ["orders"],
    revocation,
    now: () => NOW_S * 1000,
    resolveKey: ({ kid }) => {
      if (kid !== key.kid) throw new GatehouseError("unknown_key", "no key with this kid");
      return publicKey;
    },
  });
});

const policy = () =>
  compilePolicy(
    `rules:
  - match: { prefix: /public }
    public: true
  - match: { prefix: /admin }
    scopes: { allOf: [orders:admin] }
  - match: { grpc: /gatehouse.v1.TokenService/GetJwks }
    public: true
  - match: { grpc: "/gatehouse.v1.TokenService/*" }
    scopes: { allOf: [orders:read] }
`,
    "policy.yaml",
  );

const codeOf = async (p: Promise<unknown>) =>
  p.then(
    () => "ok",
    (e: GatehouseError) => e.code,
  );

describe("bearer token parsing (RFC 6750)", () => {
  it.each([
    ["Bearer abc.def.ghi", "abc.def.ghi"],
    ["bearer abc.def.ghi", "abc.def.ghi"],
    ["BEARER abc", "abc"],
    ["  Bearer abc  ", "abc"],
    [["Bearer abc"], "abc"],
  ])("%j → %s", (header, token) => {
    expect(bearerToken(header)).toBe(token);
  });

  it.each([
    [undefined, "missing_token"],
    [null, "missing_token"],
    ["", "missing_token"],
    [[], "missing_token"],
    ["Basic dXNlcjpwYXNz", "missing_token"],
    ["Bearer", "malformed_token"],
    ["Bearer  abc", "malformed_token"],
    ["Bearer abc def", "malformed_token"],
    ["Bearer a\u00e9b", "malformed_token"],
    [["Bearer a", "Bearer b"], "malformed_token"],
    ["Bearerabc", "missing_token"],
  ])("%j → %s", (header, code) => {
    expect(() => bearerToken(header as string)).toThrow(expect.objectContaining({ code }));
  });
});

describe("in-process request authenticator", () => {
  it("verifies against the matched rule, with Node-style and fetch-style headers", async () => {
    const authenticate = createRequestAuthenticator({ verifier, policy: policy() });
    const read = mint(["orders:read"]);
    await expect(
      authenticate({ method: "GET", url: "/orders/1", headers: { authorization: `Bearer ${read}` } }),
    ).resolves.toMatchObject({ subject: "user-1" });
    await expect(
      authenticate({
        method: "GET",
        path: "/orders/1",
        headers: new Headers({ Authorization: `Bearer ${read}` }),
      }),
    ).resolves.toMatchObject({ subject: "user-1" });
    expect(
      await codeOf(
        authenticate({ method: "GET", url: "/admin/x", headers: { authorization: `Bearer ${read}` } }),
      ),
    ).toBe("insufficient_scope");
    expect(await codeOf(authenticate({ method: "GET", url: "/orders", headers: {} }))).toBe("missing_token");
    expect(
      await codeOf(
        authenticate({ method: "GET", url: "/orders", headers: { Authorization: "Bearer x.y.z" } }),
      ),
    ).toBe("malformed_token");
  });

  it("lets anyone through a public route, and still names a caller whose token is valid", async () => {
    const authenticate = createRequestAuthenticator({ verifier, policy: policy });
    await expect(authenticate({ method: "GET", url: "/public/x", headers: {} })).resolves.toBeNull();
    await expect(
      authenticate({ method: "GET", url: "/public/x", headers: { authorization: "Bearer junk" } }),
    ).resolves.toBeNull();
    await expect(
      authenticate({ method: "GET", url: "/public/x", headers: { authorization: `Bearer ${mint([])}` } }),
    ).resolves.toMatchObject({ subject: "user-1" });
  });

  it("judges the canonical path: ambiguous and non-canonical paths are refused, guarded rules ignore case", async () => {
    const authenticate = createRequestAuthenticator({ verifier, policy });
    const read = mint(["orders:read"]);
    const as = (url: string, headers: Record<string, string> = {}) =>
      codeOf(authenticate({ method: "GET", url, headers }));
    expect(await as("/ADMIN/x", { authorization: `Bearer ${read}` })).toBe("insufficient_scope");
    expect(await as("/public/..;/admin")).toBe("ambiguous_path");
    expect(await as("/public/..%2fadmin")).toBe("ambiguous_path");
    expect(await as("/public/%00")).toBe("invalid_path");
    expect(await as("/public/../admin")).toBe("invalid_request");
    // A fetch Request's URL is absolute: its path is what counts.
    await expect(
      authenticate({ method: "GET", url: "http://app.test/public/x?y=1", headers: {} }),
    ).resolves.toBeNull();
  });

  it("takes a missing method as GET and finds the header in any spelling", async () => {
    const getOnly = compilePolicy(
      `rules:
  - match: { prefix: /reports, methods: [GET] }
    public: true
`,
      "policy.yaml",
    );
    const authenticate = createRequestAuthenticator({ verifier, policy: () => getOnly });
    await expect(authenticate({ url: "/reports/1", headers: {} })).resolves.toBeNull();
    expect(await codeOf(authenticate({ method: "POST", url: "/reports/1", headers: {} }))).toBe(
      "missing_token",
    );
    await expect(authenticate({ headers: {} })).rejects.toMatchObject({ code: "missing_token" });
    const token = mint([]);
    for (const name of ["authorization", "Authorization", "AUTHORIZATION"]) {
      await expect(
        authenticate({ method: "POST", url: "/x", headers: { [name]: `Bearer ${token}` } }),
      ).resolves.toMatchObject({ subject: "user-1" });
    }
    expect(
      await codeOf(
        authenticate({ method: "POST", url: "/x", headers: { other: "1", authorization: undefined } }),
      ),
    ).toBe("missing_token");
  });

  it("without a policy, every route needs a valid token", async () => {
    const authenticate = createRequestAuthenticator({ verifier });
    expect(await codeOf(authenticate({ method: "GET", url: "/public/x", headers: {} }))).toBe(
      "missing_token",
    );
  });
});

describe("Connect interceptor", () => {
  function client(seen: (Identity | undefined)[]) {
    const transport = createRouterTransport(
      (router) =>
        router.service(TokenService, {
          getJwks: (_req, ctx) => {
            seen.push(ctx.values.get(identityKey));
            return { keys: [] };
          },
          listSessions: (_req, ctx) => {
            seen.push(ctx.values.get(identityKey));
            return {};
          },
        }),
      { router: { interceptors: [createAuthInterceptor({ verifier, policy: policy() })] } },
    );
    return createClient(TokenService, transport);
  }

  it("puts the verified identity in the context", async () => {
    const seen: (Identity | undefined)[] = [];
    await client(seen).listSessions({}, { headers: { authorization: `Bearer ${mint(["orders:read"])}` } });
    expect(seen[0]).toMatchObject({ subject: "user-1", scopes: ["orders:read"] });
  });

  it("serves public methods without a token", async () => {
    const seen: (Identity | undefined)[] = [];
    await client(seen).getJwks({});
    expect(seen).toEqual([undefined]);
  });

  it.each([
    ["no token", undefined, Code.Unauthenticated, "missing_token"],
    ["a bad token", "Bearer a.b.c", Code.Unauthenticated, "malformed_token"],
    ["too few scopes", "SCOPELESS", Code.PermissionDenied, "insufficient_scope"],
  ])("rejects %s with the reason in ErrorInfo", async (_name, authorization, code, reason) => {
    const seen: (Identity | undefined)[] = [];
    const headers =
      authorization === undefined
        ? {}
        : { authorization: authorization === "SCOPELESS" ? `Bearer ${mint([])}` : authorization };
    const err = await client(seen)
      .listSessions({}, { headers })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(code);
    expect((err as ConnectError).findDetails(ErrorInfoSchema)[0]).toMatchObject({
      reason,
      domain: "gatehouse",
    });
    expect(seen).toEqual([]);
  });
});

describe("toConnectError", () => {
  it("passes a ConnectError through unchanged", () => {
    const original = new ConnectError("x", Code.Aborted);
    expect(toConnectError(original)).toBe(original);
  });

  it("carries the code, the message and the metadata; hides an internal error's message", () => {
    const err = toConnectError(
      new GatehouseError("insufficient_scope", "token lacks scope a", { metadata: { scope: "a" } }),
    );
    expect(err.code).toBe(Code.PermissionDenied);
    expect(err.rawMessage).toBe("token lacks scope a");
    expect(err.findDetails(ErrorInfoSchema)[0]).toMatchObject({
      reason: "insufficient_scope",
      domain: "gatehouse",
      metadata: { scope: "a" },
    });
    const internal = toConnectError(new Error("db password is hunter2"));
    expect(internal.code).toBe(Code.Internal);
    expect(internal.rawMessage).toBe("internal error");
  });
});
