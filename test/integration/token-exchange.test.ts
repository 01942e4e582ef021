import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { createLocalJWKSet, decodeJwt, jwtVerify } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  IssueRequestSchema,
  IssueServiceTokenRequestSchema,
  RevokeRequestSchema,
} from "../../services/gen/proto/gatehouse/v1/token_service_pb.ts";
import type { ClientRecord } from "../../services/token/clients/client-record.ts";
import type { Caller } from "../../services/token/flows/flow-deps.ts";
import { introspect } from "../../services/token/flows/introspect-flow.ts";
import { issue, issueServiceToken } from "../../services/token/flows/issue-flow.ts";
import { revoke } from "../../services/token/flows/revoke-flow.ts";
import { exchangeToken } from "../../services/token/flows/token-exchange-flow.ts";
import {
  ACCESS_TOKEN_TYPE,
  JWT_TOKEN_TYPE,
  type TokenExchangeRequest,
} from "../../services/token/flows/token-exchange-request.ts";
import { poolExecutor } from "../../services/token/store/sql-executor.ts";
import { buildAccessTokenClaims } from "../../services/token/tokens/access-token-claims.ts";
import { type TestDatabase, useTestDatabase } from "../support/database.ts";
import { createLocalIssuer } from "../support/local-issuer.ts";
import { createTestClient, flowDeps, testClock } from "../support/token-fixtures.ts";

let tdb: TestDatabase;
let deps: Awaited<ReturnType<typeof flowDeps>>;
const clock = testClock();
let web: ClientRecord;
let svcA: ClientRecord;
let svcB: ClientRecord;
let ops: ClientRecord;
let seq = 0;

const as = (client: ClientRecord): Caller => ({ client, requestId: `req-${++seq}` });

beforeAll(async () => {
  tdb = await useTestDatabase();
  deps = await flowDeps(tdb.db.prisma, poolExecutor(tdb.db.pool!), clock.now);
  web = (await createTestClient(tdb.db.prisma, { id: "web", allowedClaims: ["plan", "may_act"] })).client;
  svcA = (
    await createTestClient(tdb.db.prisma, {
      id: "svc-a",
      roles: ["service"],
      allowedAudiences: ["billing", "svc-a"],
      allowedScopes: ["orders:read", "billing:read"],
      allowedClaims: ["plan"],
    })
  ).client;
  svcB = (
    await createTestClient(tdb.db.prisma, {
      id: "svc-b",
      roles: ["service"],
      allowedAudiences: ["ledger"],
      allowedScopes: ["billing:read"],
      allowedClaims: [],
    })
  ).client;
  ops = (await createTestClient(tdb.db.prisma, { id: "ops", roles: ["revoker"] })).client;
});
afterAll(async () => {
  deps?.stop();
  await tdb?.drop();
});

function login(subject = `user-${++seq}`, extra: Record<string, unknown> = {}) {
  return issue(
    deps,
    as(web),
    create(IssueRequestSchema, {
      subject,
      audience: ["orders"],
      scopes: ["orders:read", "billing:read"],
      ...extra,
    }),
  );
}

function exchange(client: ClientRecord, subjectToken: string, over: Partial<TokenExchangeRequest> = {}) {
  return exchangeToken(deps, as(client), {
    subjectToken,
    subjectTokenType: ACCESS_TOKEN_TYPE,
    actorToken: "",
    actorTokenType: "",
    audience: ["billing"],
    resource: [],
    scopes: [],
    requestedTokenType: "",
    ...over,
  });
}

async function verified(token: string) {
  const { payload } = await jwtVerify(token, createLocalJWKSet({ keys: deps.keys.jwks().keys as never }), {
    issuer: "https://auth.test",
    typ: "at+jwt",
    currentDate: new Date(clock.now()),
  });
  return payload;
}

describe("Exchange", () => {
  it("keeps sub, sid, sv and tenant, addresses the new audience and names the client as actor", async () => {
    const user = await login("alice", { tenant: "acme", claims: { plan: "gold" } });
    const r = await exchange(svcA, user.accessToken!);
    const payload = await verified(r.accessToken);
    const original = decodeJwt(user.accessToken!);
    expect(payload).toMatchObject({
      sub: "alice",
      sid: user.sessionId,
      sv: 1,
      tenant: "acme",
      plan: "gold",
      aud: "billing",
      client_id: "svc-a",
      scope: "orders:read billing:read",
      act: { sub: "svc-a" },
    });
    expect(payload.jti).not.toBe(original.jti);
    expect(r).toMatchObject({
      issuedTokenType: ACCESS_TOKEN_TYPE,
      tokenType: "Bearer",
      audience: ["billing"],
      scopes: ["orders:read", "billing:read"],
      actors: ["svc-a"],
      expiresAt: payload.exp,
    });
    // The exchanged token is live by the same rules as any other: introspection says so.
    const seen = await introspect(deps, as(ops), { token: r.accessToken, tokenTypeHint: "" } as never);
    expect(seen).toMatchObject({ active: true, subject: "alice", sessionId: user.sessionId });
  });

  it("a chain of two exchanges nests the earlier actor inside the later (RFC 8693 §4.1)", async () => {
    const user = await login();
    const first = await exchange(svcA, user.accessToken!, { scopes: ["billing:read"] });
    const second = await exchange(svcB, first.accessToken, { audience: ["ledger"] });
    const payload = await verified(second.accessToken);
    expect(payload.act).toEqual({ sub: "svc-b", act: { sub: "svc-a" } });
    expect(payload).toMatchObject({
      sub: user.accessToken ? decodeJwt(user.accessToken).sub : "",
      aud: "ledger",
    });
    expect(payload.sid).toBe(user.sessionId);
    expect(second.actors).toEqual(["svc-b", "svc-a"]);
    expect(second.scopes).toEqual(["billing:read"]);
  });

  it("takes the actor from an actor token issued to the calling client", async () => {
    const user = await login();
    const own = await issueServiceToken(
      deps,
      as(svcA),
      create(IssueServiceTokenRequestSchema, { audience: ["svc-a"] }),
    );
    const r = await exchange(svcA, user.accessToken!, {
      actorToken: own.accessToken!,
      actorTokenType: JWT_TOKEN_TYPE,
      subjectTokenType: JWT_TOKEN_TYPE,
    });
    expect((await verified(r.accessToken)).act).toEqual({ sub: "svc-a" });
    // Another client's token cannot be presented as the actor.
    await expect(
      exchange(svcB, user.accessToken!, {
        audience: ["ledger"],
        actorToken: own.accessToken!,
        actorTokenType: ACCESS_TOKEN_TYPE,
      }),
    ).rejects.toMatchObject({ code: "invalid_request", metadata: { field: "actor_token" } });
  });

  it("lives no longer than the subject token", async () => {
    const user = await login();
    clock.advance(500_000); // 100 s of the subject token's 600 s left
    const r = await exchange(svcA, user.accessToken!);
    const payload = await verified(r.accessToken);
    expect(payload.exp).toBe(decodeJwt(user.accessToken!).exp);
    expect(r.expiresIn).toBe(100);
  });

  it("writes an audit event naming the actor chain and both tokens' jti, never a token", async () => {
    const user = await login();
    const r = await exchange(svcA, user.accessToken!);
    const rows = await tdb.db.prisma.auditEvent.findMany({
      where: { action: "access_token.exchange", targetId: user.sessionId! },
    });
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({
      actor: "client:svc-a",
      targetType: "session",
      clientId: "svc-a",
      outcome: "success",
      details: {
        audience: ["billing"],
        actors: ["svc-a"],
        subject_token_jti: decodeJwt(user.accessToken!).jti,
        jti: decodeJwt(r.accessToken).jti,
      },
    });
    expect(JSON.stringify(rows[0]!.details)).not.toContain(user.accessToken!.split(".")[2]);
  });

  describe("may_act (RFC 8693 §4.4)", () => {
    it("admits the named actor and keeps may_act on the new token", async () => {
      const user = await login(undefined, { claims: { may_act: { sub: "svc-a" } } });
      const r = await exchange(svcA, user.accessToken!);
      expect(await verified(r.accessToken)).toMatchObject({
        act: { sub: "svc-a" },
        may_act: { sub: "svc-a" },
      });
      // So the next hop by anyone else is refused too.
      await expect(exchange(svcB, r.accessToken, { audience: ["ledger"] })).rejects.toMatchObject({
        code: "actor_not_allowed",
      });
    });

    it("refuses any other actor with actor_not_allowed and audits the attempt as denied", async () => {
      const user = await login(undefined, { claims: { may_act: { sub: "svc-a" } } });
      await expect(exchange(svcB, user.accessToken!, { audience: ["ledger"] })).rejects.toMatchObject({
        code: "actor_not_allowed",
      });
      const rows = await tdb.db.prisma.auditEvent.findMany({
        where: { action: "access_token.exchange", targetId: user.sessionId! },
      });
      expect(rows).toHaveLength(1);
      expect(rows[0]).toMatchObject({
        actor: "client:svc-b",
        outcome: "denied",
        details: {
          actors: ["svc-b"],
          audience: ["ledger"],
          subject_token_jti: decodeJwt(user.accessToken!).jti,
        },
      });
      expect(rows[0]!.details).not.toHaveProperty("jti");
    });
  });

  describe("what may be asked for", () => {
    it.each([
      ["an audience the client may not request", { audience: ["ledger"] }, "audience_not_allowed"],
      [
        "a resource the client may not request",
        { audience: [], resource: ["https://hr.example/"] },
        "audience_not_allowed",
      ],
      ["no audience at all", { audience: [] }, "invalid_request"],
      ["a scope the subject token lacks (widening)", { scopes: ["orders:write"] }, "scope_not_allowed"],
      [
        "an unsupported subject_token_type",
        { subjectTokenType: "urn:ietf:params:oauth:token-type:id_token" },
        "unsupported_token_type",
      ],
      [
        "an unsupported requested_token_type",
        { requestedTokenType: "urn:ietf:params:oauth:token-type:refresh_token" },
        "unsupported_token_type",
      ],
      [
        "an actor_token_type without an actor_token",
        { actorTokenType: ACCESS_TOKEN_TYPE },
        "invalid_request",
      ],
    ] as const)("refuses %s with %s", async (_label, over, code) => {
      const user = await login();
      await expect(
        exchange(svcA, user.accessToken!, over as Partial<TokenExchangeRequest>),
      ).rejects.toMatchObject({
        code,
      });
    });

    it("a scope the client lacks is refused even when the subject token has it", async () => {
      const user = await login();
      await expect(
        exchange(svcB, user.accessToken!, { audience: ["ledger"], scopes: ["orders:read"] }),
      ).rejects.toMatchObject({ code: "scope_not_allowed" });
    });

    it("accepts a resource the client may address as the audience (RFC 8707)", async () => {
      const user = await login();
      const r = await exchange(svcA, user.accessToken!, { audience: [], resource: ["billing"] });
      expect(r.audience).toEqual(["billing"]);
    });
  });

  describe("subject tokens that do not count", () => {
    it("refuses an expired subject token with token_expired", async () => {
      const user = await login();
      clock.advance(601_000);
      await expect(exchange(svcA, user.accessToken!)).rejects.toMatchObject({
        code: "token_expired",
        metadata: { field: "subject_token" },
      });
    });

    it("refuses a subject token whose session was revoked with session_revoked", async () => {
      const user = await login();
      await revoke(
        deps,
        as(ops),
        create(RevokeRequestSchema, { target: { case: "sessionId", value: user.sessionId! } }),
      );
      await expect(exchange(svcA, user.accessToken!)).rejects.toMatchObject({ code: "session_revoked" });
    });

    it("refuses a subject token behind its session's version with session_revoked", async () => {
      const user = await login();
      await revoke(
        deps,
        as(ops),
        create(RevokeRequestSchema, {
          target: { case: "sessionId", value: user.sessionId! },
          accessOnly: true,
        }),
      );
      await expect(exchange(svcA, user.accessToken!)).rejects.toMatchObject({ code: "session_revoked" });
    });

    it("refuses a revoked subject token (its jti) with token_revoked", async () => {
      const user = await login();
      await revoke(
        deps,
        as(ops),
        create(RevokeRequestSchema, {
          target: { case: "accessToken", value: user.accessToken! },
          accessOnly: true,
        }),
      );
      await expect(exchange(svcA, user.accessToken!)).rejects.toMatchObject({ code: "token_revoked" });
    });

    it("refuses a subject token of a revoked subject with subject_revoked", async () => {
      // A service token has no session, so only the subject revocation can stop it.
      const token = await issueServiceToken(
        deps,
        as(svcB),
        create(IssueServiceTokenRequestSchema, { audience: ["ledger"], scopes: ["billing:read"] }),
      );
      clock.advance(1000);
      await revoke(
        deps,
        as(ops),
        create(RevokeRequestSchema, { target: { case: "subject", value: "svc-b" } }),
      );
      await expect(exchange(svcA, token.accessToken!)).rejects.toMatchObject({ code: "subject_revoked" });
    });

    it("refuses a token signed by a key that is not ours with invalid_grant", async () => {
      const foreign = await createLocalIssuer();
      const token = foreign.mint({ subject: "alice", scopes: ["billing:read"], audience: ["orders"] });
      await expect(exchange(svcA, token)).rejects.toMatchObject({
        code: "invalid_grant",
        metadata: { field: "subject_token" },
      });
    });

    it("refuses a token signed by our key for another issuer with invalid_grant", async () => {
      const token = deps.keys.active().sign(
        buildAccessTokenClaims({
          issuer: "https://elsewhere.test",
          subject: "alice",
          audience: ["orders"],
          clientId: "web",
          scopes: ["billing:read"],
          jti: randomUUID(),
          nowSeconds: Math.floor(clock.now() / 1000),
          ttlSeconds: 600,
        }),
      );
      await expect(exchange(svcA, token)).rejects.toMatchObject({ code: "invalid_grant" });
    });

    it("refuses a revoked actor token like a revoked subject token", async () => {
      const user = await login();
      const own = await issueServiceToken(
        deps,
        as(svcA),
        create(IssueServiceTokenRequestSchema, { audience: ["svc-a"] }),
      );
      await revoke(
        deps,
        as(ops),
        create(RevokeRequestSchema, { target: { case: "accessToken", value: own.accessToken! } }),
      );
      await expect(
        exchange(svcA, user.accessToken!, {
          actorToken: own.accessToken!,
          actorTokenType: ACCESS_TOKEN_TYPE,
        }),
      ).rejects.toMatchObject({ code: "token_revoked", metadata: { field: "actor_token" } });
    });
  });
});
