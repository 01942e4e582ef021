import { decodeJwt } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "../../services/shared/logging/index.ts";
import { ACCESS_TOKEN_TYPE } from "../../services/token/flows/token-exchange-request.ts";
import { type RunningTokenService, startTokenService } from "../../services/token/token-service.ts";
import { type TestDatabase, useTestDatabase } from "../support/database.ts";
import {
  connectJsonClient,
  connectReason,
  type GrpcFailure,
  grpcTokenClient,
} from "../support/token-clients.ts";
import { createTestClient } from "../support/token-fixtures.ts";
import { testServiceSettings } from "../support/token-service-settings.ts";

/** The Exchange RPC on a running token service: both protocols, roles, validation, rate limit. */

let tdb: TestDatabase;
let service: RunningTokenService;
const creds: Record<string, { id: string; secret: string }> = {};
const EXCHANGE_LIMIT = { ratePerSecond: 1, burst: 6 };

beforeAll(async () => {
  tdb = await useTestDatabase();
  for (const [id, roles] of [
    ["web", ["issuer"]],
    ["svc", ["service"]],
    ["conn", ["service"]],
    ["flood", ["service"]],
  ] as const) {
    creds[id] = { id, secret: (await createTestClient(tdb.db.prisma, { id, roles: [...roles] })).secret };
  }
  service = await startTokenService({
    settings: testServiceSettings({ rateLimitExchange: EXCHANGE_LIMIT }),
    database: { kind: "postgres", url: tdb.url },
    logger: createLogger({ level: "silent", component: "token", pretty: false }),
  });
});
afterAll(async () => {
  await service?.shutdown();
  await tdb?.drop();
});

async function userToken(): Promise<string> {
  const c = grpcTokenClient(service.grpcPort, creds.web);
  try {
    const r = await c.issue({ subject: "alice", audience: ["orders"], scopes: ["orders:read"] });
    return r.accessToken;
  } finally {
    c.close();
  }
}

const failure = (p: Promise<unknown>) =>
  p.then(
    () => expect.fail("expected the call to fail"),
    (e: GrpcFailure) => e,
  );

describe("Exchange RPC", () => {
  it("exchanges over gRPC (grpc-js)", async () => {
    const subjectToken = await userToken();
    const c = grpcTokenClient(service.grpcPort, creds.svc);
    const r = await c.exchange({
      subjectToken,
      subjectTokenType: ACCESS_TOKEN_TYPE,
      audience: ["billing"],
    });
    expect(r).toMatchObject({
      issuedTokenType: ACCESS_TOKEN_TYPE,
      tokenType: "Bearer",
      audience: ["billing"],
      scopes: ["orders:read"],
      actors: ["svc"],
    });
    const claims = decodeJwt(r.accessToken);
    expect(claims).toMatchObject({ sub: "alice", client_id: "svc", act: { sub: "svc" } });
    expect(Number(r.accessTokenExpiresAt!.seconds)).toBe(claims.exp);
    c.close();
  });

  it("exchanges over Connect/JSON, and answers refusals with the typed reason", async () => {
    const subjectToken = await userToken();
    const call = connectJsonClient(service.httpPort, creds.conn);
    const ok = await call("Exchange", { subjectToken, audience: ["orders"] });
    expect(ok.status).toBe(200);
    expect(ok.json).toMatchObject({ actors: ["conn"], audience: ["orders"] });

    const widened = await call("Exchange", { subjectToken, audience: ["billing"], scopes: ["orders:write"] });
    expect(widened.status).toBe(403);
    expect(connectReason(widened.json)).toBe("scope_not_allowed");
    const badType = await call("Exchange", {
      subjectToken,
      subjectTokenType: "urn:ietf:params:oauth:token-type:saml2",
      audience: ["billing"],
    });
    expect(badType.status).toBe(400);
    expect(connectReason(badType.json)).toBe("unsupported_token_type");
    const foreign = await call("Exchange", { subjectToken: "not.a.token", audience: ["billing"] });
    expect(foreign.status).toBe(401);
    expect(connectReason(foreign.json)).toBe("invalid_grant");
  });

  it("refuses an ISSUER client: only SERVICE (or ADMIN) clients act for users", async () => {
    const subjectToken = await userToken();
    const c = grpcTokenClient(service.grpcPort, creds.web);
    const f = await failure(c.exchange({ subjectToken, audience: ["billing"] }));
    expect(f).toMatchObject({ code: 7, reason: "unauthorized_client", metadata: { method: "Exchange" } });
    c.close();
  });

  it("refuses a caller without credentials", async () => {
    const c = grpcTokenClient(service.grpcPort);
    const f = await failure(c.exchange({ subjectToken: "x", audience: ["billing"] }));
    expect(f).toMatchObject({ code: 16, reason: "invalid_client" });
    c.close();
  });

  it("rate-limits each client's exchanges (RESOURCE_EXHAUSTED / rate_limited)", async () => {
    const subjectToken = await userToken();
    const c = grpcTokenClient(service.grpcPort, creds.flood);
    const outcomes: string[] = [];
    for (let i = 0; i < 9; i++) {
      outcomes.push(
        await c.exchange({ subjectToken, audience: ["billing"] }).then(
          () => "ok",
          (e: GrpcFailure) => `${e.code}:${e.reason}`,
        ),
      );
    }
    expect(outcomes.slice(0, 6)).toEqual(Array(6).fill("ok"));
    expect(outcomes).toContain("8:rate_limited");
    c.close();
    // Another client is not affected.
    const other = grpcTokenClient(service.grpcPort, creds.svc);
    await expect(other.exchange({ subjectToken, audience: ["billing"] })).resolves.toBeDefined();
    other.close();
  });
});
