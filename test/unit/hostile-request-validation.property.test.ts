import { randomUUID } from "node:crypto";
import { create, type DescMessage, type MessageInitShape } from "@bufbuild/protobuf";
import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import type { PrismaClient } from "../../services/gen/prisma/client.ts";
import {
  ExchangeRequestSchema,
  IntrospectRequestSchema,
  IssueRequestSchema,
  IssueServiceTokenRequestSchema,
  ListSessionsRequestSchema,
  RefreshRequestSchema,
  RevokeRequestSchema,
} from "../../services/gen/proto/gatehouse/v1/token_service_pb.ts";
import type { GatehouseErrorCode } from "../../services/shared/errors/codes.ts";
import { GatehouseError } from "../../services/shared/errors/gatehouse-error.ts";
import { createLogger } from "../../services/shared/logging/index.ts";
import type { ClientRecord } from "../../services/token/clients/client-record.ts";
import type { Caller, FlowDeps } from "../../services/token/flows/flow-deps.ts";
import { introspect } from "../../services/token/flows/introspect-flow.ts";
import { issue, issueServiceToken } from "../../services/token/flows/issue-flow.ts";
import { listSessions } from "../../services/token/flows/list-sessions-flow.ts";
import { refresh } from "../../services/token/flows/refresh-flow.ts";
import { LIMITS } from "../../services/token/flows/request-limits.ts";
import { revoke } from "../../services/token/flows/revoke-flow.ts";
import { exchangeToken } from "../../services/token/flows/token-exchange-flow.ts";
import { ACCESS_TOKEN_TYPE, JWT_TOKEN_TYPE } from "../../services/token/flows/token-exchange-request.ts";
import type { KeyRing } from "../../services/token/keys/key-ring.ts";
import {
  generateSigningKey,
  privateKeyFromPkcs8,
  publicKeyFromJwk,
} from "../../services/token/keys/signing-key-material.ts";
import type { TokenStore } from "../../services/token/store/token-store.ts";
import { createAccessTokenSigner } from "../../services/token/tokens/access-token-signer.ts";
import { generateRefreshToken } from "../../services/token/tokens/refresh-token-format.ts";

/**
 * Every TokenService flow fed arbitrary field values: each call either succeeds or fails with a
 * GatehouseError whose code is one the RPC documents for bad input or a refused grant — never
 * `internal`, never a TypeError — and a call refused as `invalid_request` reaches no storage at all.
 * Storage here records calls and answers "nothing found"; the flows' SQL runs in the integration tests.
 */

const NOW = Date.parse("2026-11-23T12:00:00Z");
const RUNS = { numRuns: 250 };
const WRITES = new Set([
  "createSession",
  "rotateIfLive",
  "rotate",
  "revokeForReuse",
  "revokeSessions",
  "revokeSubject",
  "revokeAccessToken",
  "recordExchange",
]);

/** Storage that writes nothing: records what a flow asked for and answers "not found". */
const MAC_KEY = { kid: "rk-mac-test", key: Buffer.alloc(32, 9) };

function recordingStore(calls: string[]): TokenStore {
  const answers: Record<string, unknown> = {
    createSession: undefined,
    rotateIfLive: null,
    readRefreshState: null,
    readFamilyState: null,
    rotate: null,
    revokeForReuse: null,
    revokeSessions: [],
    revokeSubject: { eventId: randomUUID() },
    revokeAccessToken: null,
    recordExchange: undefined,
    accessTokenStatus: {
      jtiRevoked: false,
      sessionRevokedAt: null,
      sessionVersion: null,
      subjectNotBefore: null,
      clientDisabledAt: null,
    },
  };
  return new Proxy({} as TokenStore, {
    get: (_target, name: string) => async () => {
      calls.push(name);
      if (!(name in answers)) throw new Error(`unexpected store call ${name}`);
      return answers[name];
    },
  });
}

let deps: FlowDeps & { prisma: PrismaClient };
/** Signs claims with the test key (set in beforeAll): valid subject and actor tokens for Exchange. */
let signToken: (claims: Record<string, unknown>) => string;
const calls: string[] = [];
const client: ClientRecord = {
  id: "web",
  name: "web",
  secretHash: "",
  previousSecretHash: null,
  previousSecretExpiresAt: null,
  roles: ["issuer", "revoker", "introspector"],
  allowedAudiences: ["orders", "billing"],
  allowedScopes: ["orders:read", "orders:write"],
  allowedClaims: ["plan", "tier"],
  allowedTenants: ["*"],
  allowedSubjectPrefixes: [],
  accessTokenTtlSeconds: 600,
  refreshIdleTtlSeconds: 86_400,
  refreshAbsoluteTtlSeconds: 7 * 86_400,
  refreshGraceSeconds: 10,
  rateLimitPerSecond: null,
  rateLimitBurst: null,
  disabledAt: null,
};
const caller: Caller = { client, requestId: "req-1" };

beforeAll(async () => {
  const k = await generateSigningKey("EdDSA");
  const privateKey = privateKeyFromPkcs8(k.pkcs8);
  const publicKey = publicKeyFromJwk(k.publicJwk);
  const signer = createAccessTokenSigner({ kid: k.kid, algorithm: "EdDSA", privateKey });
  signToken = signer as unknown as typeof signToken;
  const keys = {
    active: () => ({ kid: k.kid, algorithm: "EdDSA", sign: signer }),
    verificationKey: (kid: string) => (kid === k.kid ? { key: publicKey, algorithm: "EdDSA" } : undefined),
  } as unknown as KeyRing;
  const prisma = {
    session: {
      findMany: async (args: unknown) => {
        calls.push("session.findMany");
        expect(args).toBeTypeOf("object");
        return [];
      },
    },
  } as unknown as PrismaClient;
  deps = {
    prisma,
    store: recordingStore(calls),
    keys,
    issuer: "https://auth.test",
    successorKeys: {
      active: () => ({ kid: "rk-test", key: Buffer.alloc(32, 7) }),
      byKid: async (kid) => ({ kid: kid ?? "rk-test", key: Buffer.alloc(32, 7) }),
    },
    macKeys: {
      active: () => MAC_KEY,
      byKid: async () => MAC_KEY,
      find: async (kid) => (kid === MAC_KEY.kid ? MAC_KEY : undefined),
    },
    maxAccessTokenTtlSeconds: 3600,
    now: () => NOW,
    publish: async () => true,
    log: createLogger({ level: "silent", component: "test", pretty: false }),
  };
});

// ---- arbitraries: hostile field values --------------------------------------------------------

/** Characters that break naive validation: controls, U+FFFD, lone surrogates, whitespace, RTL, NUL. */
const nasty = fc.constantFrom(
  "\u0000",
  "\u0007",
  "\n",
  "\r",
  "\t",
  " ",
  "\u007f",
  "\u0085",
  "\u00a0",
  "\u2028",
  "\u202e",
  "\ufeff",
  "\ufffd",
  "\ud800",
  "\udc00",
  "😀",
  "%",
  "'",
  '"',
  "\\",
  "{",
  ".",
);
const plainText = fc.oneof(
  { weight: 3, arbitrary: fc.string({ maxLength: 40 }) },
  { weight: 2, arbitrary: fc.string({ unit: nasty, maxLength: 10 }) },
  {
    weight: 2,
    arbitrary: fc.constantFrom("orders", "billing", "orders:read", "orders:write", "plan", "alice"),
  },
  { weight: 1, arbitrary: fc.string({ unit: "binary", maxLength: 30 }) },
  { weight: 1, arbitrary: fc.integer({ min: 120, max: 5000 }).map((n) => "x".repeat(n)) },
  {
    weight: 1,
    arbitrary: fc.constantFrom("", " ", "a".repeat(256), "a".repeat(257), "a".repeat(4096), "a".repeat(4097)),
  },
);
/** Otherwise acceptable values with one nasty character spliced in: what slips past a lax check. */
const text = fc.oneof(
  { weight: 4, arbitrary: plainText },
  {
    weight: 1,
    arbitrary: fc
      .tuple(fc.constantFrom("alice", "orders", "Mozilla/5.0", "acme"), fc.nat(), nasty)
      .map(([s, at, ch]) => s.slice(0, at % (s.length + 1)) + ch + s.slice(at % (s.length + 1))),
  },
);
const list = fc.oneof(
  fc.array(text, { maxLength: 6 }),
  fc.array(fc.constant("orders:read"), { maxLength: 80 }),
);
const uuidish = fc.oneof(
  fc.uuid(),
  text,
  fc.uuid().map((u) => u.toUpperCase()),
  fc.uuid().map((u) => `${u} `),
);
const refreshish = fc.oneof(
  text,
  fc.constant(null).map(() => generateRefreshToken(randomUUID(), MAC_KEY)),
  fc.string({ maxLength: 60 }).map((s) => `gthr_${s}`),
);
const jsonValue = fc.jsonValue({ maxDepth: 3 });
const claims = fc.oneof(
  fc.constant(undefined),
  fc.dictionary(
    fc.oneof(text, fc.constantFrom("plan", "tier", "sub", "iss", "__proto__", "constructor")),
    jsonValue,
    {
      maxKeys: 4,
    },
  ),
  fc.record({ plan: fc.string({ minLength: 4000, maxLength: 5000 }) }),
);

/** A service token of the caller's (no session, so live for the recording store), some with an act chain. */
const ownToken = fc
  .record({
    sub: fc.oneof(fc.constantFrom("svc", "alice"), text),
    scope: fc.constantFrom("orders:read", "orders:read orders:write", "billing:read", ""),
    act: fc.oneof(
      fc.constant(undefined),
      fc.constant({ sub: "svc-a" }),
      jsonValue,
      fc
        .nat({ max: 9 })
        .map((n) => JSON.parse(`${'{"sub":"s","act":'.repeat(n)}{"sub":"z"}${"}".repeat(n)}`)),
    ),
    expIn: fc.constantFrom(600, 1, 0, -5),
  })
  .map(({ sub, scope, act, expIn }) =>
    signToken({
      iss: "https://auth.test",
      sub,
      aud: "orders",
      exp: NOW / 1000 + expIn,
      iat: NOW / 1000,
      jti: randomUUID(),
      client_id: "web",
      ...(scope === "" ? {} : { scope }),
      ...(act === undefined ? {} : { act }),
    }),
  );
const tokenish = fc.oneof({ weight: 2, arbitrary: ownToken }, { weight: 1, arbitrary: text });
const tokenType = fc.oneof(
  fc.constantFrom("", ACCESS_TOKEN_TYPE, JWT_TOKEN_TYPE, "urn:ietf:params:oauth:token-type:id_token"),
  text,
);

const requests = {
  exchange: fc.record({
    subjectToken: tokenish,
    subjectTokenType: tokenType,
    actorToken: fc.oneof(fc.constant(""), tokenish),
    actorTokenType: tokenType,
    audience: list,
    resource: fc.oneof(fc.constant([]), list),
    scopes: list,
    requestedTokenType: tokenType,
  }),
  issue: fc.record({
    subject: text,
    audience: list,
    scopes: list,
    tenant: text,
    claims,
    device: fc.option(
      fc.record({ userAgent: text, ipAddress: fc.oneof(text, fc.ipV4(), fc.ipV6()), name: text }),
      {
        nil: undefined,
      },
    ),
  }),
  issueServiceToken: fc.record({ audience: list, scopes: list }),
  refresh: fc.record({ refreshToken: refreshish, scopes: list }),
  revoke: fc.record({
    target: fc.oneof(
      fc.constant({ case: undefined }),
      fc.record({ case: fc.constant("refreshToken" as const), value: refreshish }),
      fc.record({ case: fc.constant("accessToken" as const), value: text }),
      fc.record({ case: fc.constant("sessionId" as const), value: uuidish }),
      fc.record({ case: fc.constant("subject" as const), value: text }),
    ),
    accessOnly: fc.boolean(),
    reason: text,
  }),
  introspect: fc.record({
    token: fc.oneof(text, refreshish),
    tokenTypeHint: fc.oneof(fc.constantFrom("", "access_token", "refresh_token", "id_token"), text),
  }),
  listSessions: fc.record({
    subject: text,
    pageSize: fc.oneof(fc.integer(), fc.constantFrom(0, 1, LIMITS.pageSize, LIMITS.pageSize + 1, -1)),
    // No page token (the first page) is the common valid case: without it too few of the runs got
    // past validation, and the "reaches both sides" check failed about one run in four.
    pageToken: fc.oneof(
      fc.constant(""),
      text,
      fc.jsonValue().map((v) => Buffer.from(JSON.stringify(v) ?? "").toString("base64url")),
      fc.tuple(fc.double(), fc.uuid()).map((c) => Buffer.from(JSON.stringify(c)).toString("base64url")),
    ),
  }),
};

// ---- the property ------------------------------------------------------------------------------

type Flow = (req: never) => Promise<unknown>;

async function settle(flow: Flow, schema: DescMessage, init: unknown) {
  calls.length = 0;
  // Requests arrive decoded, like the RPC layer hands them over.
  let req: unknown;
  try {
    req = create(schema, init as MessageInitShape<DescMessage>);
  } catch {
    return { kind: "not-a-message" as const };
  }
  try {
    return { kind: "ok" as const, value: await flow(req as never), calls: [...calls] };
  } catch (err) {
    if (!(err instanceof GatehouseError)) throw new Error(`flow threw a non-Gatehouse error: ${err}`);
    return { kind: "refused" as const, code: err.code, field: err.metadata.field, calls: [...calls] };
  }
}

const cases: [string, Flow, DescMessage, fc.Arbitrary<unknown>, GatehouseErrorCode[]][] = [
  [
    "Issue",
    (r) => issue(deps, caller, r),
    IssueRequestSchema,
    requests.issue,
    ["invalid_request", "audience_not_allowed", "scope_not_allowed", "claim_not_allowed"],
  ],
  [
    "IssueServiceToken",
    (r) => issueServiceToken(deps, caller, r),
    IssueServiceTokenRequestSchema,
    requests.issueServiceToken,
    ["invalid_request", "audience_not_allowed", "scope_not_allowed"],
  ],
  [
    "Refresh",
    (r) => refresh(deps, caller, r),
    RefreshRequestSchema,
    requests.refresh,
    ["invalid_request", "invalid_grant", "scope_not_allowed"],
  ],
  ["Revoke", (r) => revoke(deps, caller, r), RevokeRequestSchema, requests.revoke, ["invalid_request"]],
  [
    "Introspect",
    (r) => introspect(deps, caller, r),
    IntrospectRequestSchema,
    requests.introspect,
    ["invalid_request"],
  ],
  [
    "ListSessions",
    (r) => listSessions(deps, caller, r),
    ListSessionsRequestSchema,
    requests.listSessions,
    ["invalid_request"],
  ],
  [
    "Exchange",
    (r) => exchangeToken(deps, caller, r),
    ExchangeRequestSchema,
    requests.exchange,
    [
      "invalid_request",
      "unsupported_token_type",
      "invalid_grant",
      "token_expired",
      "audience_not_allowed",
      "scope_not_allowed",
    ],
  ],
];

/** Text a flow accepted into storage or a token: bounded, and free of what the checks promise to keep out. */
const UNPRINTABLE =
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is checked for
  /[\u0000-\u001f\u007f\ufffd]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

describe("request validation of every TokenService RPC under hostile input", () => {
  it.each(cases)(
    "%s: succeeds or refuses with a documented code; invalid_request touches no storage",
    async (_name, flow, schema, arb, allowed) => {
      const seen = new Set<string>();
      await fc.assert(
        fc.asyncProperty(arb, async (init) => {
          const result = await settle(flow, schema, init);
          seen.add(result.kind === "refused" ? result.code : result.kind);
          if (result.kind === "refused") {
            expect(allowed).toContain(result.code);
            if (result.code === "invalid_request") {
              expect(
                result.calls.filter(
                  (c) =>
                    WRITES.has(c) ||
                    c === "readRefreshState" ||
                    c === "readFamilyState" ||
                    c === "session.findMany",
                ),
              ).toEqual([]);
            }
          }
        }),
        RUNS,
      );
      // The generators reach both sides: some inputs pass validation, some do not.
      expect(seen.has("invalid_request")).toBe(true);
      expect([...seen].some((k) => k !== "invalid_request")).toBe(true);
    },
  );

  it("Issue stores only checked text: bounded, no control characters, no broken UTF-16", async () => {
    const stored: unknown[] = [];
    const store = deps.store;
    deps.store = new Proxy(store, {
      get: (target, name: string) =>
        name === "createSession"
          ? async (s: unknown) => {
              stored.push(s);
            }
          : (target as unknown as Record<string, unknown>)[name],
    });
    try {
      await fc.assert(
        fc.asyncProperty(requests.issue, async (init) => {
          stored.length = 0;
          const result = await settle((r) => issue(deps, caller, r), IssueRequestSchema, init);
          if (result.kind !== "ok") return;
          const s = stored[0] as {
            subject: string;
            tenant: string | null;
            scopes: string[];
            audience: string[];
            device: Record<string, string | null>;
          };
          for (const v of [
            s.subject,
            s.tenant ?? "",
            ...s.scopes,
            ...s.audience,
            ...Object.values(s.device).map((d) => d ?? ""),
          ]) {
            expect(v.length).toBeLessThanOrEqual(LIMITS.deviceField);
            expect(v).not.toMatch(UNPRINTABLE);
          }
        }),
        {
          ...RUNS,
          // JSON can carry a lone surrogate ("\ud800") that binary protobuf cannot: always try one.
          examples: [
            [
              {
                subject: "a\ud800b",
                audience: [],
                scopes: [],
                tenant: "",
                claims: undefined,
                device: undefined,
              },
            ],
          ],
        },
      );
    } finally {
      deps.store = store;
    }
  });
});
