import { createTokenClient, GatehouseError, type TokenClient, type TokenSet } from "gatehouse/client";
import { GatehouseError as VerifyError } from "gatehouse/verify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type TestDatabase, useTestDatabase } from "../support/database.ts";
import { type SdkTokenService, startSdkTokenService } from "../support/sdk-token-service.ts";
import { createTestClient } from "../support/token-fixtures.ts";

/**
 * `gatehouse/client` against a real token service on Postgres, over both transports: Issue and
 * Refresh, single-flight refresh counted on the server's own RPC metrics, retry on UNAVAILABLE only,
 * and proactive refresh on a fake clock.
 */
let tdb: TestDatabase;
let ts: SdkTokenService;
const clients: TokenClient[] = [];

/** Another issuing client: a refresh token `web` obtained is not its to refresh (`invalid_grant`). */
let other: TokenClient;

beforeAll(async () => {
  tdb = await useTestDatabase();
  ts = await startSdkTokenService(tdb);
  const { secret } = await createTestClient(tdb.db.prisma, { id: "other", roles: ["issuer"] });
  other = client({ credentials: { clientId: "other", clientSecret: secret } });
});

async function webRefreshToken(): Promise<string> {
  return (await client().issue({ subject: "victim", audience: ["orders"] })).refreshToken;
}

afterAll(async () => {
  for (const c of clients) c.close();
  await ts?.stop();
  await tdb?.drop();
});

function client(options: Partial<Parameters<typeof createTokenClient>[0]> = {}): TokenClient {
  const c = createTokenClient({ baseUrl: ts.grpcUrl, credentials: ts.web, ...options });
  clients.push(c);
  return c;
}

async function codeOf(promise: Promise<unknown>): Promise<string> {
  const err = await promise.then(
    () => expect.unreachable("should have failed"),
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(GatehouseError);
  return (err as GatehouseError).code;
}

describe("Issue and Refresh", () => {
  for (const protocol of ["grpc", "connect"] as const) {
    it(`issues and rotates over ${protocol}`, async () => {
      const c = client({ protocol, baseUrl: protocol === "grpc" ? ts.grpcUrl : ts.httpUrl });
      const issued = await c.issue({
        subject: `alice-${protocol}`,
        audience: ["orders"],
        scopes: ["orders:read"],
      });
      expect(issued.refreshToken).toMatch(/^gthr_/);
      expect(issued.audience).toEqual(["orders"]);
      expect(issued.scopes).toEqual(["orders:read"]);
      expect(issued.accessTokenExpiresAt).toBeGreaterThan(Date.now());
      const refreshed = await c.refresh(issued.refreshToken);
      expect(refreshed.sessionId).toBe(issued.sessionId);
      expect(refreshed.refreshToken).not.toBe(issued.refreshToken);
      expect(refreshed.accessToken).not.toBe(issued.accessToken);
    });
  }

  it("is one error class with the verifier's: callers switch on err.code", async () => {
    expect(GatehouseError).toBe(VerifyError);
    expect(await codeOf(client().refresh("gthr_not-a-real-token"))).toBe("invalid_request");
    expect(await codeOf(other.refresh(await webRefreshToken()))).toBe("invalid_grant");
    const wrong = client({ credentials: { clientId: "web", clientSecret: "wrong" } });
    expect(await codeOf(wrong.issue({ subject: "x", audience: ["orders"] }))).toBe("invalid_client");
    expect(await codeOf(client().issue({ subject: "x", audience: ["payroll"] }))).toBe(
      "audience_not_allowed",
    );
  });

  it("authenticates with an assertion callback, read per call", async () => {
    let reads = 0;
    const c = client({
      credentials: {
        assertion: () => {
          reads++;
          return "not-a-jwt";
        },
      },
    });
    expect(await codeOf(c.issue({ subject: "x", audience: ["orders"] }))).toBe("assertion_malformed");
    expect(await codeOf(c.issue({ subject: "x", audience: ["orders"] }))).toBe("assertion_malformed");
    expect(reads).toBe(2);
  });

  it("refuses bad options up front", () => {
    expect(() =>
      createTokenClient({ baseUrl: ts.grpcUrl, credentials: { clientId: "web", clientSecret: "" } }),
    ).toThrow(TypeError);
    expect(() =>
      createTokenClient({ baseUrl: ts.grpcUrl, credentials: ts.web, protocol: "smoke" as "grpc" }),
    ).toThrow(TypeError);
    expect(() =>
      createTokenClient({ baseUrl: ts.grpcUrl, credentials: ts.web, retry: { maxDelayMs: -1 } }),
    ).toThrow(TypeError);
  });
});

describe("single-flight refresh", () => {
  it("50 concurrent callers with one refresh token cause one Refresh RPC and share its result", async () => {
    const c = client();
    const issued = await c.issue({ subject: "bob", audience: ["orders"], scopes: ["orders:read"] });
    const before = await ts.rpcCount("Refresh");
    const results = await Promise.all(Array.from({ length: 50 }, () => c.refresh(issued.refreshToken)));
    expect(await ts.rpcCount("Refresh")).toBe(before + 1);
    expect(new Set(results).size).toBe(1);
    expect(results[0]!.refreshToken).not.toBe(issued.refreshToken);
    // Settled: the next caller starts a new flight (the server's grace window answers it with the same successor).
    const again = await c.refresh(issued.refreshToken);
    expect(await ts.rpcCount("Refresh")).toBe(before + 2);
    expect(again.refreshToken).toBe(results[0]!.refreshToken);
  });

  it("shares a failure the same way, and does not retry it", async () => {
    const foreign = await webRefreshToken();
    const before = await ts.rpcCount("Refresh");
    const codes = await Promise.all(Array.from({ length: 20 }, () => codeOf(other.refresh(foreign))));
    expect(new Set(codes)).toEqual(new Set(["invalid_grant"]));
    expect(await ts.rpcCount("Refresh")).toBe(before + 1);
  });

  it("keeps different tokens (or scopes) apart", async () => {
    const c = client();
    const a = await c.issue({
      subject: "carol",
      audience: ["orders"],
      scopes: ["orders:read", "orders:write"],
    });
    const b = await c.issue({ subject: "dave", audience: ["orders"], scopes: ["orders:read"] });
    const before = await ts.rpcCount("Refresh");
    const [ra, rb, narrowed] = await Promise.all([
      c.refresh(a.refreshToken),
      c.refresh(b.refreshToken),
      c.refresh(a.refreshToken, { scopes: ["orders:read"] }),
    ]);
    expect(await ts.rpcCount("Refresh")).toBe(before + 3);
    expect(ra.sessionId).toBe(a.sessionId);
    expect(rb.sessionId).toBe(b.sessionId);
    expect(narrowed.scopes).toEqual(["orders:read"]);
  });
});

describe("proactive refresh (fake clock)", () => {
  it("refreshes once the access token is within the margin of expiry, not before", async () => {
    let now = Date.now();
    const c = client({ now: () => now });
    const issued = await c.issue({ subject: "erin", audience: ["orders"] });
    const seen: TokenSet[] = [];
    const session = c.session(issued, { refreshBeforeMs: 60_000, onRefresh: (t) => seen.push(t) });
    const before = await ts.rpcCount("Refresh");

    now = issued.accessTokenExpiresAt - 60_001;
    expect(await session.accessToken()).toBe(issued.accessToken);
    expect(await ts.rpcCount("Refresh")).toBe(before);

    now = issued.accessTokenExpiresAt - 59_000; // 59 s before expiry: due, though still valid
    const tokens = await Promise.all(Array.from({ length: 10 }, () => session.accessToken()));
    expect(await ts.rpcCount("Refresh")).toBe(before + 1);
    expect(new Set(tokens).size).toBe(1);
    expect(tokens[0]).not.toBe(issued.accessToken);
    expect(seen).toHaveLength(1);
    expect(session.tokens.refreshToken).toBe(seen[0]!.refreshToken);
    now = Date.now(); // the new token is minutes from its own margin
    expect(await session.accessToken()).toBe(tokens[0]);
    expect(await ts.rpcCount("Refresh")).toBe(before + 1);
  });

  it("defaults to a fifth of the token's lifetime when that is under a minute", async () => {
    let now = Date.now();
    const c = client({ now: () => now });
    const issued = await c.issue({ subject: "frank", audience: ["orders"] });
    // Pretend the 10-minute token had a 100 s lifetime: margin 20 s.
    now = issued.accessTokenExpiresAt - 100_000;
    const session = c.session(issued);
    const before = await ts.rpcCount("Refresh");
    now = issued.accessTokenExpiresAt - 20_001;
    await session.accessToken();
    expect(await ts.rpcCount("Refresh")).toBe(before);
    now = issued.accessTokenExpiresAt - 19_999;
    expect(await session.accessToken()).not.toBe(issued.accessToken);
    expect(await ts.rpcCount("Refresh")).toBe(before + 1);
  });
});

describe("retry on UNAVAILABLE", () => {
  it("issues once a token service that started late is up", async () => {
    const late = await startSdkTokenService(tdb, { deferred: true, clientId: "late" });
    const c = client({ baseUrl: late.grpcUrl, credentials: late.web, retry: { maxElapsedMs: 20_000 } });
    try {
      const issuing = c.issue({ subject: "gina", audience: ["orders"] });
      await new Promise((r) => setTimeout(r, 300));
      await late.start();
      const issued = await issuing;
      expect(issued.sessionId).not.toBe("");
    } finally {
      await late.stop();
    }
  });

  it("refreshes across a token service restart, inside the refresh window", async () => {
    const c = client({ retry: { refreshWindowMs: 8000 } });
    const issued = await c.issue({ subject: "hank", audience: ["orders"] });
    await ts.stop();
    const refreshing = c.refresh(issued.refreshToken);
    await new Promise((r) => setTimeout(r, 300));
    await ts.start();
    const refreshed = await refreshing;
    expect(refreshed.sessionId).toBe(issued.sessionId);
    expect(await ts.rpcCount("Refresh")).toBe(1); // the restarted service's metrics: one call reached it
  });

  it("gives up on a Refresh at the end of its window with `unavailable`; 0 means one attempt", async () => {
    const down = await startSdkTokenService(tdb, { deferred: true, clientId: "down" });
    // The assertion callback runs once per attempt: it counts them.
    let attempts = 0;
    const counting = {
      assertion: () => {
        attempts++;
        return "unused";
      },
    };
    const windowed = client({
      baseUrl: down.grpcUrl,
      credentials: counting,
      retry: { refreshWindowMs: 300 },
    });
    expect(await codeOf(windowed.refresh("gthr_whatever"))).toBe("unavailable");
    expect(attempts).toBeGreaterThan(1);
    attempts = 0;
    const once = client({ baseUrl: down.grpcUrl, credentials: counting, retry: { refreshWindowMs: 0 } });
    expect(await codeOf(once.refresh("gthr_whatever"))).toBe("unavailable");
    expect(attempts).toBe(1);
    attempts = 0;
    const none = client({ baseUrl: down.grpcUrl, credentials: counting, retry: { maxElapsedMs: 0 } });
    expect(await codeOf(none.issue({ subject: "x", audience: ["orders"] }))).toBe("unavailable");
    expect(attempts).toBe(1);
  });
});
