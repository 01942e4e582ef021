import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";
import { decodeJwt } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fingerprint } from "../../services/shared/logging/fingerprint.ts";
import { createLogger } from "../../services/shared/logging/index.ts";
import { encodeRevocationEntry } from "../../services/shared/revocation/revocation-entry.ts";
import { type RunningTokenService, startTokenService } from "../../services/token/token-service.ts";
import { type TestDatabase, useTestDatabase } from "../support/database.ts";
import { useTestRedis } from "../support/redis.ts";
import { grpcTokenClient } from "../support/token-clients.ts";
import { createTestClient } from "../support/token-fixtures.ts";
import { testServiceSettings } from "../support/token-service-settings.ts";

/**
 * The `gatehouse` CLI as operators run it: `node bin/gatehouse.mjs ...` subprocesses against a token
 * service started here. Every invocation costs a Node start, so independent ones run side by side.
 */
const BIN = fileURLToPath(new URL("../../bin/gatehouse.mjs", import.meta.url));
const masterKey = randomBytes(32);

let tdb: TestDatabase;
let service: RunningTokenService;
let root: { id: string; secret: string };
let web: { id: string; secret: string };

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function gatehouse(
  args: string[],
  options: { env?: Record<string, string | undefined>; input?: string } = {},
) {
  const env: Record<string, string | undefined> = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    GATEHOUSE_SERVER: `127.0.0.1:${service.grpcPort}`,
    GATEHOUSE_ADMIN_SERVER: `127.0.0.1:${service.adminPort}`,
    GATEHOUSE_CLIENT_ID: root.id,
    GATEHOUSE_CLIENT_SECRET: root.secret,
    DATABASE_URL: tdb.url,
    ...options.env,
  };
  return new Promise<Run>((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      env: Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined)) as NodeJS.ProcessEnv,
      stdio: ["pipe", "pipe", "pipe"],
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
    child.stdin.end(options.input ?? "");
  });
}

const json = (r: Run) => {
  expect(r.stderr).toBe("");
  expect(r.code).toBe(0);
  return JSON.parse(r.stdout);
};

beforeAll(async () => {
  tdb = await useTestDatabase();
  root = {
    id: "root",
    secret: (await createTestClient(tdb.db.prisma, { id: "root", roles: ["admin"] })).secret,
  };
  web = {
    id: "web",
    secret: (await createTestClient(tdb.db.prisma, { id: "web", roles: ["issuer"] })).secret,
  };
  service = await startTokenService({
    settings: testServiceSettings({
      databasePoolSize: 6,
      masterKey,
      auditRetention: 400 * 86_400_000,
      shutdownGrace: 1000,
    }),
    database: { kind: "postgres", url: tdb.url },
    logger: createLogger({ level: "silent", component: "token", pretty: false }),
  });
});
afterAll(async () => {
  await service?.shutdown();
  await tdb?.drop();
});

describe("help and usage errors", () => {
  it("prints --help for every command and subcommand with exit 0", { timeout: 180_000 }, async () => {
    const cases = [
      [["--help"], "Usage: gatehouse <command>"],
      [["keys", "--help"], "Usage: gatehouse keys <subcommand>"],
      [["keys", "rotate", "--help"], "Usage: gatehouse keys rotate"],
      [["keys", "rewrap", "--help"], "--new-master-key"],
      [["clients", "create", "--help"], "--direct"],
      [["clients", "rotate-secret", "--help"], "--overlap"],
      [["sessions", "revoke", "--help"], "--access-only"],
      [["audit", "list", "--help"], "--since"],
      [["token", "inspect", "--help"], "--jwks"],
    ] as const;
    const runs = await Promise.all(cases.map(([args]) => gatehouse([...args])));
    runs.forEach((r, i) => {
      expect(r.code).toBe(0);
      expect(r.stdout).toContain(cases[i]![1]);
    });
  });

  it("exits 2 with the usage on a usage error", { timeout: 180_000 }, async () => {
    const cases: [string[], RegExp, Record<string, string | undefined>?][] = [
      [["keys", "activate"], /missing KID/],
      [["keys", "list", "--bogus"], /Unknown option '--bogus'/],
      // A thumbprint kid can start with '-': the refusal says how to pass it.
      [["keys", "activate", "-hXyz"], /goes after --: … -- -hXyz/],
      [["keys", "frobnicate"], /unknown subcommand "frobnicate"/],
      [["keys"], /missing subcommand/],
      [["clients", "create", "--name", "x"], /at least one --role/],
      [["clients", "create", "--name", "x", "--role", "wizard"], /--role must be one of/],
      [["clients", "update", "web"], /nothing to update/],
      [["sessions", "revoke", "--subject", "a", "--session-id", "b"], /exactly one of/],
      [["sessions", "list"], /--subject is required/],
      [["sessions", "list", "--subject", "a", "--limit", "ten"], /--limit must be a number/],
      [["audit", "list", "--limit", "lots"], /--limit must be a number/],
      [["keys", "list"], /credentials required/, { GATEHOUSE_CLIENT_ID: undefined }],
      [["keys", "rewrap", "--old-master-key", "short", "--new-master-key", "short"], /--old-master-key/],
    ];
    const runs = await Promise.all(cases.map(([args, , env]) => gatehouse(args, { env: env ?? {} })));
    runs.forEach((r, i) => {
      expect(r.code, cases[i]![0].join(" ")).toBe(2);
      expect(r.stderr).toMatch(cases[i]![1]);
      expect(r.stdout).toBe("");
    });
  });

  it("exits 1 when the call fails", { timeout: 180_000 }, async () => {
    const [unknownKey, wrongSecret, unreachable, notAdmin] = await Promise.all([
      gatehouse(["keys", "activate", "no-such-kid"]),
      gatehouse(["clients", "list"], { env: { GATEHOUSE_CLIENT_SECRET: "gths_wrong" } }),
      gatehouse(["keys", "list", "--server", "127.0.0.1:1"]),
      gatehouse(["audit", "list"], {
        env: { GATEHOUSE_CLIENT_ID: web.id, GATEHOUSE_CLIENT_SECRET: web.secret },
      }),
    ]);
    expect(unknownKey).toMatchObject({ code: 1, stdout: "" });
    expect(unknownKey.stderr).toMatch(/no signing key no-such-kid \(not_found\)/);
    expect(wrongSecret.code).toBe(1);
    expect(wrongSecret.stderr).toMatch(/invalid_client/);
    expect(unreachable.code).toBe(1);
    expect(unreachable.stderr).toMatch(/cannot reach the token service at 127\.0\.0\.1:1/);
    expect(notAdmin.code).toBe(1);
    expect(notAdmin.stderr).toMatch(/unauthorized_client/);
  });
});

describe("keys", () => {
  it("lists, creates, activates, retires, revokes and rotates", { timeout: 240_000 }, async () => {
    const [table, listed] = await Promise.all([
      gatehouse(["keys", "list"]),
      gatehouse(["keys", "list", "--json"]),
    ]);
    expect(table.code).toBe(0);
    expect(table.stdout.split("\n")[0]).toMatch(/^KID\s+ALG\s+STATUS\s+CREATED/);
    expect(table.stdout).toMatch(/EdDSA\s+active/);
    const first = json(listed).keys[0];
    expect(first).toMatchObject({
      status: "SIGNING_KEY_STATUS_ACTIVE",
      algorithm: "SIGNING_ALGORITHM_EDDSA",
    });

    const [es, rsa] = await Promise.all([
      gatehouse(["keys", "create", "--algorithm", "ES256", "--json"]).then(json),
      gatehouse(["keys", "create", "--algorithm", "RS256", "--rsa-bits", "3072"]),
    ]);
    expect(es.key.status).toBe("SIGNING_KEY_STATUS_STAGED");
    expect(rsa.stdout).toMatch(/RS256\s+staged/);
    const rsaKid = rsa.stdout.split("\n")[1]!.split(/\s+/)[0]!;

    const early = await gatehouse(["keys", "activate", "--", es.key.kid]);
    expect(early.code).toBe(1);
    expect(early.stderr).toMatch(/failed_precondition/);
    expect(early.stderr).toMatch(/or now with --force/);
    expect(early.stderr).not.toMatch(/pass force/);
    const [activated, retired] = await Promise.all([
      gatehouse(["keys", "activate", "--force", "--", es.key.kid]),
      gatehouse(["keys", "retire", "--json", "--", rsaKid]).then(json),
    ]);
    expect(activated.code).toBe(0);
    expect(activated.stdout).toMatch(new RegExp(`${es.key.kid}\\s+ES256\\s+active`));
    expect(activated.stdout).toMatch(new RegExp(`${first.kid}\\s+EdDSA\\s+retiring`));
    expect(retired.key.status).toBe("SIGNING_KEY_STATUS_RETIRED");

    const rotated = await gatehouse(["keys", "rotate", "--force", "--json"]).then(json);
    expect(rotated.staged.status).toBe("SIGNING_KEY_STATUS_STAGED");
    const [again, forcedAgain] = await Promise.all([
      gatehouse(["keys", "rotate"]),
      gatehouse(["keys", "rotate", "--force"]),
    ]);
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(new RegExp(`nothing was due; staged key ${rotated.staged.kid} signs next`));
    // Forced with a young staged key: says why nothing happened and what would switch now.
    expect(forcedAgain.code).toBe(0);
    expect(forcedAgain.stdout).not.toMatch(/nothing was due/);
    expect(forcedAgain.stdout).toMatch(
      new RegExp(
        `nothing changed: staged key ${rotated.staged.kid} has been published for less than the JWKS cache period .*keys activate ${rotated.staged.kid} --force`,
      ),
    );

    const revoked = await gatehouse(["keys", "revoke", "--reason", "drill", "--", es.key.kid]);
    expect(revoked.code).toBe(0);
    expect(revoked.stdout).toMatch(new RegExp(`revoked ${es.key.kid}: \\d+ live session`));
    const all = await gatehouse(["keys", "list", "--include-retired", "--json"]).then(json);
    const statuses = Object.fromEntries(
      all.keys.map((k: { kid: string; status: string }) => [k.kid, k.status]),
    );
    expect(statuses[es.key.kid]).toBe("SIGNING_KEY_STATUS_REVOKED");
    expect(Object.values(statuses).filter((s) => s === "SIGNING_KEY_STATUS_ACTIVE")).toHaveLength(1);
  });
});

describe("clients", () => {
  it("creates, lists, gets, updates, rotates the secret of, disables and enables a client", {
    timeout: 240_000,
  }, async () => {
    const created = await gatehouse([
      "clients",
      "create",
      "--id",
      "billing",
      "--name",
      "Billing",
      "--role",
      "issuer",
      "--audience",
      "orders",
      "--access-ttl",
      "5m",
      "--tenant",
      "acme",
      "--tenant",
      "globex",
      "--subject-prefix",
      "cust:",
      "--json",
    ]).then(json);
    expect(created.client).toMatchObject({
      clientId: "billing",
      roles: ["CLIENT_ROLE_ISSUER"],
      accessTokenTtl: "300s",
      allowedTenants: ["acme", "globex"],
      allowedSubjectPrefixes: ["cust:"],
    });
    expect(created.clientSecret).toMatch(/^gths_/);
    const plain = await gatehouse(["clients", "create", "--name", "Reports", "--role", "service"]);
    expect(plain.code).toBe(0);
    expect(plain.stdout).toMatch(/client secret: gths_/);
    expect(plain.stderr).toMatch(/will not show it again/);

    const [table, list, got, updated] = await Promise.all([
      gatehouse(["clients", "list"]),
      gatehouse(["clients", "list", "--role", "issuer", "--json"]).then(json),
      gatehouse(["clients", "get", "billing"]),
      gatehouse([
        "clients",
        "update",
        "billing",
        "--scope",
        "orders:read",
        "--grace",
        "0s",
        "--tenant",
        "*",
        "--subject-prefix",
        "",
        "--rate-limit",
        "5",
        "--rate-burst",
        "20",
        "--json",
      ]).then(json),
    ]);
    expect(table.stdout.split("\n")[0]).toMatch(/^CLIENT ID\s+NAME\s+ROLES/);
    expect(table.stdout).toMatch(/billing\s+Billing\s+issuer\s+5m\s+enabled/);
    expect(list.clients.map((c: { clientId: string }) => c.clientId)).toEqual(["billing", "web"]);
    expect(got.stdout).toMatch(/access token ttl:\s+5m/);
    expect(updated.client).toMatchObject({
      allowedScopes: ["orders:read"],
      refreshGracePeriod: "0s",
      allowedTenants: ["*"],
      rateLimitPerSecond: 5,
      rateLimitBurst: 20,
    });
    expect(updated.client.allowedSubjectPrefixes).toEqual([]);
    expect((await gatehouse(["clients", "get", "billing"])).stdout).toMatch(
      /rate limit:\s+5\/s per method, burst 20/,
    );

    const rotated = await gatehouse([
      "clients",
      "rotate-secret",
      "billing",
      "--overlap",
      "1h",
      "--json",
    ]).then(json);
    expect(rotated.clientSecret).not.toBe(created.clientSecret);
    const [disabled, badOverlap] = await Promise.all([
      gatehouse(["clients", "disable", "billing", "--reason", "decommissioned"]),
      gatehouse(["clients", "rotate-secret", "web", "--overlap", "30d"]),
    ]);
    expect(disabled.code).toBe(0);
    expect(disabled.stdout).toMatch(/disabled billing: 0 session\(s\) revoked/);
    expect(badOverlap.code).toBe(1);
    expect(badOverlap.stderr).toMatch(/invalid_request/);
    const enabled = await gatehouse(["clients", "enable", "billing", "--json"]).then(json);
    expect(enabled.client.disabledAt).toBeUndefined();
    expect(enabled.client.disabledReason).toBe("");
  });

  it("bootstraps an admin straight into the database with --direct", { timeout: 180_000 }, async () => {
    const r = await gatehouse(["clients", "create", "--admin", "--direct", "--id", "ops-admin"], {
      env: {
        GATEHOUSE_CLIENT_ID: undefined,
        GATEHOUSE_CLIENT_SECRET: undefined,
        GATEHOUSE_SERVER: undefined,
      },
    });
    expect(r.code).toBe(0);
    const secret = /client secret: (gths_\S+)/.exec(r.stdout)?.[1];
    expect(secret).toBeDefined();
    const listed = await gatehouse(["clients", "get", "ops-admin", "--json"], {
      env: { GATEHOUSE_CLIENT_ID: "ops-admin", GATEHOUSE_CLIENT_SECRET: secret },
    }).then(json);
    expect(listed.client.roles).toEqual(["CLIENT_ROLE_ADMIN"]);
    const audit = await tdb.sql.query("SELECT actor FROM audit_events WHERE target_id = 'ops-admin'");
    expect(audit.rows[0].actor).toMatch(/^system:cli-direct:/);
  });
});

describe("sessions, audit and tokens", () => {
  let accessToken: string;
  let sessionId: string;

  beforeAll(async () => {
    const c = grpcTokenClient(service.grpcPort, web);
    const issued = await c.issue({ subject: "alice", audience: ["orders"] });
    c.close();
    accessToken = issued.accessToken;
    sessionId = issued.sessionId;
  });

  it("lists and revokes sessions", { timeout: 180_000 }, async () => {
    const [table, listed] = await Promise.all([
      gatehouse(["sessions", "list", "--subject", "alice"]),
      gatehouse(["sessions", "list", "--subject", "alice", "--json"]).then(json),
    ]);
    expect(table.stdout).toMatch(new RegExp(`${sessionId}\\s+alice\\s+web`));
    expect(listed.sessions[0].sessionId).toBe(sessionId);
    const revoked = await gatehouse(["sessions", "revoke", "--session-id", sessionId, "--reason", "cli"]);
    expect(revoked.code).toBe(0);
    expect(revoked.stdout).toMatch(/revoked 1 session\(s\)/);
    const after = await gatehouse(["sessions", "list", "--subject", "alice", "--json"]).then(json);
    expect(after.sessions).toEqual([]);
  });

  it("lists audit events with filters", { timeout: 180_000 }, async () => {
    const [table, listed, bad] = await Promise.all([
      gatehouse(["audit", "list", "--action", "client.", "--since", "1h"]),
      gatehouse(["audit", "list", "--client", "billing", "--action", "client.disable", "--json"]).then(json),
      gatehouse(["audit", "list", "--since", "yesterday-ish"]),
    ]);
    expect(table.stdout.split("\n")[0]).toMatch(/^TIME\s+ACTOR\s+ACTION\s+TARGET\s+OUTCOME/);
    expect(table.stdout).toMatch(/client:root\s+client\.create\s+client:billing\s+success/);
    expect(listed.events[0]).toMatchObject({ actor: "client:root", outcome: "AUDIT_OUTCOME_SUCCESS" });
    expect(listed.events[0].details.reason).toBe("decommissioned");
    expect(bad.code).toBe(2);
  });

  it("pages sessions and audit events alike: --limit, --page-token, --all", {
    timeout: 180_000,
  }, async () => {
    const c = grpcTokenClient(service.grpcPort, web);
    for (let i = 0; i < 3; i++) await c.issue({ subject: "pat", audience: ["orders"] });
    c.close();
    const sessions = ["sessions", "list", "--subject", "pat", "--limit", "2"];
    const audit = ["audit", "list", "--action", "client.", "--limit", "2"];
    const [sFirst, sFirstJson, sAll, aFirst, aAll] = await Promise.all([
      gatehouse(sessions),
      gatehouse([...sessions, "--json"]).then(json),
      gatehouse([...sessions, "--all", "--json"]).then(json),
      gatehouse(audit),
      gatehouse([...audit, "--all", "--json"]).then(json),
    ]);
    const more = (noun: string, r: Run) => {
      expect(r.code).toBe(0);
      expect(r.stdout.trimEnd().split("\n")).toHaveLength(3); // header and one page
      return new RegExp(`^more ${noun}: --page-token (\\S+) \\(or --all\\)\n$`).exec(r.stderr)?.[1];
    };
    const sToken = more("sessions", sFirst);
    expect(sToken).toBe(sFirstJson.nextPageToken);
    expect(sFirstJson.sessions).toHaveLength(2);
    expect(sAll.sessions).toHaveLength(3);
    expect(sAll.nextPageToken).toBe("");
    const aToken = more("events", aFirst);
    expect(aToken).toBeTruthy();
    expect(aAll.events.length).toBeGreaterThan(2);
    expect(aAll.nextPageToken).toBe("");
    const [sRest, aNext] = await Promise.all([
      gatehouse([...sessions, "--page-token", sToken!, "--json"]).then(json),
      gatehouse([...audit, "--page-token", aToken!, "--json"]).then(json),
    ]);
    const ids = (xs: { sessionId: string }[]) => xs.map((x) => x.sessionId);
    expect([...ids(sFirstJson.sessions), ...ids(sRest.sessions)]).toEqual(ids(sAll.sessions));
    expect(sRest.nextPageToken).toBe("");
    expect(aNext.events.map((e: { id: string }) => e.id)).toEqual(
      aAll.events.slice(2, 4).map((e: { id: string }) => e.id),
    );
  });

  it("inspects a token, and says which key signed it and whether it verifies", {
    timeout: 180_000,
  }, async () => {
    const jwks = `http://127.0.0.1:${service.httpPort}/.well-known/jwks.json`;
    const [h, p, s] = accessToken.split(".");
    const forged = `${h}.${Buffer.from(JSON.stringify({ sub: "mallory", exp: 9_999_999_999 })).toString("base64url")}.${s}`;
    // Signatures and claims only: without credentials or Redis, revocation is not checked (the
    // session behind this token was revoked above; the next test covers revocation).
    const env = { GATEHOUSE_CLIENT_ID: undefined, GATEHOUSE_CLIENT_SECRET: undefined };
    const [plain, checked, fromStdin, bad, garbage] = await Promise.all([
      gatehouse(["token", "inspect", accessToken], { env }),
      gatehouse(["token", "inspect", accessToken, "--jwks", jwks, "--audience", "orders", "--json"], {
        env,
      }).then(json),
      gatehouse(["token", "inspect", "-", "--jwks", jwks], { env, input: `Bearer ${accessToken}\n` }),
      gatehouse(["token", "inspect", forged, "--jwks", jwks], { env }),
      gatehouse(["token", "inspect", "not-a-jwt"], { env }),
    ]);
    expect(plain.code).toBe(0);
    expect(plain.stdout).toMatch(/typ:\s+at\+jwt/);
    expect(plain.stdout).toMatch(/sub:\s+alice/);
    expect(plain.stdout).toMatch(/not verified/);
    // The name logs and audit rows give the token, to match them against it.
    expect(plain.stdout).toContain(`fingerprint ${fingerprint(accessToken)}`);
    const kid = JSON.parse(Buffer.from(h!, "base64url").toString()).kid;
    expect(checked).toMatchObject({
      header: { kid, typ: "at+jwt" },
      claims: { sub: "alice", client_id: "web" },
      verification: { verifies: true, key: { kid } },
    });
    expect(fromStdin.code).toBe(0);
    expect(fromStdin.stdout).toMatch(new RegExp(`key\\s+${kid}`));
    expect(fromStdin.stdout).toMatch(/verifies\s+yes/);
    expect(bad.code).toBe(1);
    expect(bad.stdout).toMatch(/verifies\s+no: the signature does not match/);
    expect(p).toBeDefined();
    expect(garbage.code).toBe(1);
    expect(garbage.stderr).toMatch(/not a JWT/);
  });
});

describe("token inspect and revocation", () => {
  it("asks the token service, else the Redis stream, else says plainly it did not check", {
    timeout: 180_000,
  }, async () => {
    const issuer = grpcTokenClient(service.grpcPort, web);
    const [kept, revoked] = [
      (await issuer.issue({ subject: "carol", audience: ["orders"] })).accessToken,
      (await issuer.issue({ subject: "dave", audience: ["orders"] })).accessToken,
    ];
    issuer.close();
    const revokedRun = await gatehouse(["sessions", "revoke", "--access-token", revoked]);
    expect(revokedRun.code).toBe(0);

    const tredis = await useTestRedis("inspect");
    try {
      const stream = `${tredis.prefix}revocations`;
      const claims = decodeJwt(revoked);
      const event = {
        type: "token_revoked" as const,
        id: "00000000-0000-4000-8000-000000000001",
        at: Date.now(),
        until: claims.exp!,
        jti: claims.jti!,
      };
      await tredis.redis.xadd(stream, "*", ...encodeRevocationEntry(event));
      const noCreds = { GATEHOUSE_CLIENT_ID: undefined, GATEHOUSE_CLIENT_SECRET: undefined };
      const viaRedis = { ...noCreds, REDIS_URL: tredis.url, GATEHOUSE_REVOCATION_STREAM: stream };
      const [svcKept, svcRevoked, redisKept, redisRevoked, unchecked, svcDown, json] = await Promise.all([
        gatehouse(["token", "inspect", kept]),
        gatehouse(["token", "inspect", revoked]),
        gatehouse(["token", "inspect", kept], { env: viaRedis }),
        gatehouse(["token", "inspect", revoked], { env: viaRedis }),
        gatehouse(["token", "inspect", revoked], { env: noCreds }),
        gatehouse(["token", "inspect", revoked], { env: { GATEHOUSE_SERVER: "127.0.0.1:9" } }),
        gatehouse(["token", "inspect", revoked, "--json"]),
      ]);
      expect(svcKept.code).toBe(0);
      expect(svcKept.stdout).toMatch(
        /revoked\s+no \(asked the token service at 127\.0\.0\.1:\d+ \(Introspect\)\)/,
      );
      expect(svcRevoked.code).toBe(1);
      expect(svcRevoked.stdout).toMatch(
        /revoked\s+not active \(asked the token service .*\): revoked, expired/,
      );
      expect(redisKept.code).toBe(0);
      expect(redisKept.stdout).toMatch(/revoked\s+no \(asked the revocation stream .* in Redis\)/);
      expect(redisRevoked.code).toBe(1);
      expect(redisRevoked.stdout).toMatch(/revoked\s+yes: token_revoked \(asked the revocation stream/);
      // Without a source it decodes, exits 0, and says it did not look.
      expect(unchecked.code).toBe(0);
      expect(unchecked.stdout).toMatch(/revoked\s+not checked: set GATEHOUSE_CLIENT_ID/);
      expect(svcDown.code).toBe(0);
      expect(svcDown.stdout).toMatch(
        /revoked\s+not checked: token service: cannot reach the token service at 127\.0\.0\.1:9/,
      );
      expect(JSON.parse(json.stdout).revocation).toMatchObject({ checked: true, verdict: "inactive" });
    } finally {
      await tredis.cleanup();
    }
  });
});

describe("placeholder master keys", () => {
  it("serve and rewrap refuse a published or degenerate key in one line (exit 2), before touching anything", {
    timeout: 120_000,
  }, async () => {
    const [serve, rewrap] = await Promise.all([
      gatehouse(["serve"], {
        env: {
          GATEHOUSE_ISSUER: "https://auth.test",
          GATEHOUSE_MASTER_KEY: "REVWLU9OTFktZ2F0ZWhvdXNlLW1hc3Rlci1rZXktMzI=",
          GATEHOUSE_LISTEN: "127.0.0.1:0",
          GATEHOUSE_HTTP_LISTEN: "127.0.0.1:0",
          GATEHOUSE_ADMIN_LISTEN: "127.0.0.1:0",
        },
      }),
      gatehouse(["keys", "rewrap"], {
        env: {
          GATEHOUSE_OLD_MASTER_KEY: masterKey.toString("base64"),
          GATEHOUSE_NEW_MASTER_KEY: Buffer.alloc(32).toString("base64"),
        },
      }),
    ]);
    expect(serve.code).toBe(2);
    expect(serve.stdout).toBe("");
    expect(serve.stderr.trimEnd().split("\n")).toHaveLength(1);
    expect(serve.stderr).toMatch(/GATEHOUSE_MASTER_KEY: .*placeholder.*openssl rand -base64 32/);
    expect(serve.stderr).not.toContain("REVWLU9OTFkt");
    expect(rewrap.code).toBe(2);
    expect(rewrap.stderr).toMatch(/GATEHOUSE_NEW_MASTER_KEY: .*placeholder.*openssl rand -base64 32/);
  });
});

describe("keys rotate-successor and rewrap", () => {
  it("replaces the refresh successor key on the database, keeping the old one", {
    timeout: 180_000,
  }, async () => {
    const r = await gatehouse(["keys", "rotate-successor", "--json"], {
      env: { GATEHOUSE_MASTER_KEY: masterKey.toString("base64") },
    }).then(json);
    expect(r).toEqual({
      kid: expect.stringMatching(/^rk-successor-[0-9a-f]{16}$/),
      replaced: "rk-successor-legacy",
    });
    const rows = await tdb.sql.query("SELECT kid, status FROM refresh_keys ORDER BY created_at, kid");
    expect(rows.rows).toEqual(
      expect.arrayContaining([
        { kid: "rk-successor-legacy", status: "previous" },
        { kid: r.kid, status: "active" },
      ]),
    );
    const audit = await tdb.sql.query(
      "SELECT actor FROM audit_events WHERE action = 'refresh_key.rotate' AND target_id = $1",
      [r.kid],
    );
    expect(audit.rows).toEqual([{ actor: "system:cli" }]);
  });

  it("rotate-mac replaces the refresh-token MAC key on the database, keeping the old one", {
    timeout: 180_000,
  }, async () => {
    const active = await tdb.sql.query(
      "SELECT kid FROM refresh_keys WHERE purpose = 'mac' AND status = 'active'",
    );
    const r = await gatehouse(["keys", "rotate-mac", "--json"], {
      env: { GATEHOUSE_MASTER_KEY: masterKey.toString("base64") },
    }).then(json);
    expect(r).toEqual({
      kid: expect.stringMatching(/^rk-mac-[0-9a-f]{16}$/),
      replaced: active.rows[0]?.kid ?? null,
    });
    const again = await gatehouse(["keys", "rotate-mac", "--json"], {
      env: { GATEHOUSE_MASTER_KEY: masterKey.toString("base64") },
    }).then(json);
    expect(again.replaced).toBe(r.kid);
    const rows = await tdb.sql.query("SELECT kid, status FROM refresh_keys WHERE purpose = 'mac'");
    expect(rows.rows).toEqual(
      expect.arrayContaining([
        { kid: r.kid, status: "previous" },
        { kid: again.kid, status: "active" },
      ]),
    );
  });

  it("re-encrypts every key under a new master key, and refuses keys that open with neither", {
    timeout: 180_000,
  }, async () => {
    const newKey = randomBytes(32).toString("base64");
    const r = await gatehouse(["keys", "rewrap", "--new-master-key", newKey, "--json"], {
      env: { GATEHOUSE_OLD_MASTER_KEY: masterKey.toString("base64") },
    }).then(json);
    const count = await tdb.sql.query(
      "SELECT (SELECT count(*) FROM signing_keys) + (SELECT count(*) FROM refresh_keys) AS n",
    );
    expect(r).toEqual({ rewrapped: Number(count.rows[0].n), alreadyNew: 0 });
    const wrong = await gatehouse([
      "keys",
      "rewrap",
      "--old-master-key",
      randomBytes(32).toString("base64"),
      "--new-master-key",
      randomBytes(32).toString("base64"),
    ]);
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(/neither the old nor the new master key: nothing was changed/);
  });
});
