import { describe, expect, it } from "vitest";
import { basicAuthorization, parseBasicCredentials } from "../../services/token/clients/basic-credentials.ts";
import { createCallerAuthenticator } from "../../services/token/clients/caller-authenticator.ts";
import { actsForEveryone, mayCall } from "../../services/token/clients/caller-roles.ts";
import type { ClientRecord } from "../../services/token/clients/client-record.ts";
import {
  generateClientSecret,
  hashClientSecret,
  verifyClientSecret,
} from "../../services/token/clients/client-secret.ts";

const FAST = { N: 1024, r: 8, p: 1 };

async function fixture(extra: { maxPendingChecks?: number; maxPendingChecksPerClient?: number } = {}) {
  const secret = generateClientSecret();
  const oldSecret = generateClientSecret();
  let clock = Date.parse("2026-11-23T12:00:00Z");
  const base: ClientRecord = {
    id: "orders",
    name: "Orders",
    secretHash: await hashClientSecret(secret, FAST),
    previousSecretHash: await hashClientSecret(oldSecret, FAST),
    previousSecretExpiresAt: new Date(clock + 60_000),
    roles: ["issuer"],
    allowedAudiences: [],
    allowedScopes: [],
    allowedClaims: [],
    allowedTenants: [],
    allowedSubjectPrefixes: [],
    accessTokenTtlSeconds: 600,
    refreshIdleTtlSeconds: 1209600,
    refreshAbsoluteTtlSeconds: 7776000,
    refreshGraceSeconds: 10,
    rateLimitPerSecond: null,
    rateLimitBurst: null,
    disabledAt: null,
  };
  const rows = new Map<string, ClientRecord>([["orders", base]]);
  let lookups = 0;
  const auth = createCallerAuthenticator({
    clients: {
      async findClient(id) {
        lookups++;
        return rows.get(id) ?? null;
      },
    },
    cacheTtlMs: 30_000,
    ...extra,
    now: () => clock,
  });
  return {
    auth,
    secret,
    oldSecret,
    rows,
    base,
    lookups: () => lookups,
    advance: (ms: number) => {
      clock += ms;
    },
  };
}

describe("client secrets", () => {
  it("hash with recorded parameters and verify only the right secret", async () => {
    const secret = generateClientSecret();
    expect(secret).toMatch(/^gths_[A-Za-z0-9_-]{43}$/);
    const stored = await hashClientSecret(secret, FAST);
    expect(stored).toMatch(/^scrypt\$N=1024,r=8,p=1\$/);
    expect(stored).not.toContain(secret);
    expect(await verifyClientSecret(secret, stored)).toBe(true);
    expect(await verifyClientSecret(`${secret}x`, stored)).toBe(false);
    expect(await verifyClientSecret(secret, "plaintext")).toBe(false);
  });
});

describe("parseBasicCredentials", () => {
  it.each([
    [undefined, null],
    ["Bearer abc", null],
    ["Basic !!!", null],
    [`Basic ${Buffer.from("no-colon").toString("base64")}`, null],
    [`Basic ${Buffer.from(":secret").toString("base64")}`, null],
    [`Basic ${Buffer.from("id:").toString("base64")}`, null],
    [basicAuthorization("orders", "s3:cr:et"), { clientId: "orders", secret: "s3:cr:et" }],
    [`basic ${Buffer.from("a%20b:c").toString("base64")}`, { clientId: "a b", secret: "c" }],
  ])("%s → %o", (header, expected) => {
    expect(parseBasicCredentials(header)).toEqual(expected);
  });
});

describe("caller authenticator", () => {
  it("accepts the current secret and caches the verified pair", async () => {
    const f = await fixture();
    const header = basicAuthorization("orders", f.secret);
    expect((await f.auth.authenticate(header)).id).toBe("orders");
    await f.auth.authenticate(header);
    expect(f.lookups()).toBe(1);
    f.advance(30_001);
    await f.auth.authenticate(header);
    expect(f.lookups()).toBe(2);
  });

  it("accepts the previous secret only until its overlap ends", async () => {
    const f = await fixture();
    await expect(f.auth.authenticate(basicAuthorization("orders", f.oldSecret))).resolves.toMatchObject({
      id: "orders",
    });
    f.auth.forget();
    f.advance(60_000);
    await expect(f.auth.authenticate(basicAuthorization("orders", f.oldSecret))).rejects.toMatchObject({
      code: "invalid_client",
    });
  });

  it.each([
    ["no header", undefined],
    ["a wrong secret", basicAuthorization("orders", "gths_wrong")],
    ["an unknown client", basicAuthorization("nobody", "gths_wrong")],
  ])("refuses %s with invalid_client", async (_label, header) => {
    const f = await fixture();
    await expect(f.auth.authenticate(header)).rejects.toMatchObject({ code: "invalid_client" });
  });

  it.each([
    ["a NUL", "ord\0ers"],
    ["a newline", "ord\ners"],
    ["129 characters", "o".repeat(129)],
  ])("refuses a client id with %s without looking it up", async (_label, clientId) => {
    const f = await fixture();
    await expect(f.auth.authenticateCredentials({ clientId, secret: f.secret })).rejects.toMatchObject({
      code: "invalid_client",
    });
    await expect(f.auth.authenticate(basicAuthorization(clientId, f.secret))).rejects.toMatchObject({
      code: "invalid_client",
    });
    expect(f.lookups()).toBe(0);
  });

  it("authenticates credentials read from a form like a Basic header, sharing its cache", async () => {
    const f = await fixture();
    expect((await f.auth.authenticateCredentials({ clientId: "orders", secret: f.secret })).id).toBe(
      "orders",
    );
    await f.auth.authenticate(basicAuthorization("orders", f.secret));
    expect(f.lookups()).toBe(1);
  });

  it("refuses a disabled client with the same message as a wrong secret", async () => {
    const f = await fixture();
    f.rows.set("orders", { ...f.base, disabledAt: new Date() });
    const disabled = await f.auth.authenticate(basicAuthorization("orders", f.secret)).catch((e) => e);
    const wrong = await f.auth.authenticate(basicAuthorization("orders", "gths_nope")).catch((e) => e);
    expect(disabled.code).toBe("invalid_client");
    expect(disabled.message).toBe(wrong.message);
  });

  it("answers a repeated wrong secret from the failure cache for the cache TTL or until the client changes", async () => {
    const f = await fixture();
    const wrong = basicAuthorization("orders", "gths_wrong");
    await expect(f.auth.authenticate(wrong)).rejects.toMatchObject({ code: "invalid_client" });
    f.advance(29_000);
    await expect(f.auth.authenticate(wrong)).rejects.toMatchObject({ code: "invalid_client" });
    expect(f.lookups()).toBe(1);
    f.advance(1_001);
    await expect(f.auth.authenticate(wrong)).rejects.toMatchObject({ code: "invalid_client" });
    expect(f.lookups()).toBe(2);
    // The client is rotated to exactly that secret: forget() makes it work at once.
    f.rows.set("orders", { ...f.base, secretHash: await hashClientSecret("gths_wrong", FAST) });
    f.auth.forget("orders");
    await expect(f.auth.authenticate(wrong)).resolves.toMatchObject({ id: "orders" });
  });

  it("refuses checks beyond the pending bound with rate_limited, while cached callers go on", async () => {
    const f = await fixture({ maxPendingChecks: 4 });
    const good = basicAuthorization("orders", f.secret);
    await f.auth.authenticate(good);
    const flood = Array.from({ length: 12 }, (_, i) =>
      f.auth.authenticate(basicAuthorization("orders", `gths_guess${i}`)).catch((e) => e),
    );
    await expect(f.auth.authenticate(good)).resolves.toMatchObject({ id: "orders" });
    const answers = await Promise.all(flood);
    expect(answers.filter((e) => e.code === "invalid_client")).toHaveLength(4);
    const limited = answers.filter((e) => e.code === "rate_limited");
    expect(limited).toHaveLength(8);
    expect(limited[0].retryAfterMs).toBeGreaterThan(0);
    // Once drained, checks are admitted again.
    await expect(f.auth.authenticate(basicAuthorization("orders", "gths_later"))).rejects.toMatchObject({
      code: "invalid_client",
    });
  });

  it("refuses unknown client ids without a secret check, and remembers them until forget()", async () => {
    const f = await fixture({ maxPendingChecks: 1, maxPendingChecksPerClient: 1 });
    const made = Array.from({ length: 50 }, (_, i) =>
      f.auth.authenticate(basicAuthorization(`made-up-${i}`, "gths_guess")).catch((e) => e),
    );
    expect((await Promise.all(made)).map((e) => e.code)).toEqual(Array(50).fill("invalid_client"));
    const before = f.lookups();
    await expect(f.auth.authenticate(basicAuthorization("made-up-1", "gths_other"))).rejects.toMatchObject({
      code: "invalid_client",
    });
    expect(f.lookups()).toBe(before);
    f.rows.set("made-up-1", { ...f.base, id: "made-up-1" });
    f.auth.forget("made-up-1");
    await expect(f.auth.authenticate(basicAuthorization("made-up-1", f.secret))).resolves.toMatchObject({
      id: "made-up-1",
    });
  });

  it("keeps a flood of wrong secrets for one client id from refusing another client's first login", async () => {
    const f = await fixture({ maxPendingChecks: 2, maxPendingChecksPerClient: 2 });
    f.rows.set("billing", { ...f.base, id: "billing" });
    const flood = Array.from({ length: 30 }, (_, i) =>
      f.auth.authenticate(basicAuthorization("orders", `gths_guess${i}`)).catch((e) => e),
    );
    await expect(f.auth.authenticate(basicAuthorization("billing", f.secret))).resolves.toMatchObject({
      id: "billing",
    });
    const codes = (await Promise.all(flood)).map((e) => e.code);
    expect(codes.filter((c) => c === "rate_limited").length).toBeGreaterThan(0);
  });

  it("re-checks a pair verified before past every bound once its cache entry is stale", async () => {
    const f = await fixture({ maxPendingChecks: 1, maxPendingChecksPerClient: 1 });
    const good = basicAuthorization("orders", f.secret);
    await f.auth.authenticate(good);
    f.advance(30_001);
    const flood = Array.from({ length: 20 }, (_, i) =>
      f.auth.authenticate(basicAuthorization("orders", `gths_guess${i}`)).catch((e) => e),
    );
    await expect(f.auth.authenticate(good)).resolves.toMatchObject({ id: "orders" });
    expect((await Promise.all(flood)).some((e) => e.code === "rate_limited")).toBe(true);
  });

  it("never caches a success past a change, and forget() drops a client's cached pairs", async () => {
    const f = await fixture();
    const header = basicAuthorization("orders", f.secret);
    await f.auth.authenticate(header);
    f.rows.set("orders", { ...f.base, disabledAt: new Date() });
    await f.auth.authenticate(header); // still cached
    f.auth.forget("orders");
    await expect(f.auth.authenticate(header)).rejects.toMatchObject({ code: "invalid_client" });
  });
});

describe("roles", () => {
  it.each([
    [["issuer"], "Issue", true],
    [["service"], "Issue", false],
    [["service"], "IssueServiceToken", true],
    [["issuer"], "IssueServiceToken", false],
    [["introspector"], "Introspect", true],
    [["issuer"], "Introspect", false],
    [["admin"], "Introspect", true],
    [[], "Refresh", true],
    [[], "Revoke", true],
    [[], "GetJwks", true],
    [["revoker"], "ListSessions", false],
  ] as const)("%o may call %s: %s", (roles, method, expected) => {
    expect(mayCall(roles, method)).toBe(expected);
  });

  it("lets revokers and admins act on anyone's tokens, others only on their own", () => {
    expect(actsForEveryone(["revoker"], "Revoke")).toBe(true);
    expect(actsForEveryone(["revoker"], "ListSessions")).toBe(false);
    expect(actsForEveryone(["admin"], "ListSessions")).toBe(true);
    expect(actsForEveryone(["issuer"], "Revoke")).toBe(false);
  });
});

describe("caller authenticator under concurrency", () => {
  it("verifies concurrent first calls with the same credentials once", async () => {
    const f = await fixture();
    const header = basicAuthorization("orders", f.secret);
    const results = await Promise.all(Array.from({ length: 20 }, () => f.auth.authenticate(header)));
    expect(results.every((c) => c.id === "orders")).toBe(true);
    expect(f.lookups()).toBe(1);
  });
});

describe("caller authentication by request metadata", () => {
  const headers =
    (values: Record<string, string>) =>
    (name: string): string | undefined =>
      values[name];

  it("refuses Basic and an assertion together, and assertions when none are accepted", async () => {
    const { auth, secret } = await fixture();
    await expect(
      auth.authenticateRequest(
        headers({
          authorization: basicAuthorization("orders", secret),
          "x-gatehouse-client-assertion": "eyJ.x.y",
        }),
      ),
    ).rejects.toMatchObject({ code: "invalid_request" });
    await expect(
      auth.authenticateRequest(headers({ "x-gatehouse-client-assertion": "eyJ.x.y" })),
    ).rejects.toMatchObject({ code: "invalid_client" });
    await expect(
      auth.authenticateRequest(headers({ authorization: basicAuthorization("orders", secret) })),
    ).resolves.toMatchObject({ id: "orders" });
  });

  it("refuses every secret of a client that has none", async () => {
    const { auth, rows, base } = await fixture();
    rows.set("sa", { ...base, id: "sa", secretHash: null, previousSecretHash: null });
    await expect(auth.authenticate(basicAuthorization("sa", "anything"))).rejects.toMatchObject({
      code: "invalid_client",
    });
  });
});
