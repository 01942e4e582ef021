import { describe, expect, it } from "vitest";
import { unreachableDetail } from "../../services/cli/rpc-connection.ts";
import { connectionFailure, databaseFailure } from "../../services/shared/database/database-failure.ts";
import { listenFailure } from "../../services/shared/rpc/listen-failure.ts";
import { SettingsError } from "../../services/shared/settings/settings.ts";
import { compilePolicy, defaultPolicy } from "../../services/sidecar/policy/compile-policy.ts";
import { assertSomeTokenAccepted, policyStartError } from "../../services/sidecar/startup-checks.ts";
import { revocationTransportOf } from "../../services/token/revocation/revocation-transport.ts";

/**
 * The one-line messages of issue 20 ("fail fast"), rule by rule; test/integration/fail-fast.test.ts
 * checks the same through real processes. SettingsError means exit 2 (a setting must change), a plain
 * Error exit 1 (something outside must).
 */

const URL_ = "postgres://app:s3cret@db.internal:6543/gatehouse?schema=auth";
const pgError = (code: string, message = "") => Object.assign(new Error(message), { code });

describe("database failures", () => {
  it.each([
    [
      "refused",
      pgError("ECONNREFUSED"),
      Error,
      /^DATABASE_URL: cannot reach the database server at db\.internal:6543 \(ECONNREFUSED\): start Postgres/,
    ],
    ["unknown host", pgError("ENOTFOUND"), Error, /cannot reach .* \(ENOTFOUND\)/],
    [
      "pg's AggregateError of IPv4 and IPv6 tries",
      Object.assign(new AggregateError([pgError("ECONNREFUSED"), pgError("ECONNREFUSED")]), {}),
      Error,
      /cannot reach/,
    ],
    [
      "missing database",
      pgError("3D000", 'database "gatehouse" does not exist'),
      SettingsError,
      /^DATABASE_URL: database "gatehouse" does not exist on db\.internal:6543: create it/,
    ],
    [
      "wrong password",
      pgError("28P01", 'password authentication failed for user "app"'),
      SettingsError,
      /refused user "app" \(password authentication failed for user "app"\): fix the user or password/,
    ],
    ["unknown role", pgError("28000", 'role "app" does not exist'), SettingsError, /refused user "app"/],
    ["connect timeout", new Error("timeout expired"), Error, /did not answer in time/],
    [
      "a table missing",
      pgError("42P01", 'relation "signing_keys" does not exist'),
      Error,
      /^DATABASE_URL: schema "auth" has no Gatehouse tables: run `gatehouse migrate` first$/,
    ],
  ])("%s", (_name, err, kind, line) => {
    const failure = databaseFailure(err, URL_);
    expect(failure).toBeInstanceOf(kind);
    if (kind === Error) expect(failure).not.toBeInstanceOf(SettingsError);
    expect(failure!.message).toMatch(line);
    expect(failure!.message).not.toContain("s3cret");
    expect(failure!.message).not.toContain("\n");
  });

  it("finds the driver's error under Prisma's wrapping (cause chain)", () => {
    const wrapped = new Error("Invalid `prisma.signingKey.findMany()` invocation", {
      cause: pgError("3D000"),
    });
    expect(databaseFailure(wrapped, URL_)).toBeInstanceOf(SettingsError);
  });

  it("leaves anything else alone, and `migrate` never hears 'run gatehouse migrate'", () => {
    expect(databaseFailure(new Error("something else"), URL_)).toBeUndefined();
    expect(connectionFailure(pgError("42P01"), URL_)).toBeUndefined();
  });
});

describe("listen failures (exit 1: the settings are fine, the port is not free)", () => {
  it.each([
    [
      { code: "EADDRINUSE" },
      /^GATEHOUSE_PROXY_LISTEN: 0\.0\.0\.0:7401 is already in use: stop what listens there/,
    ],
    [{ code: "EACCES" }, /not allowed to listen on 0\.0\.0\.0:7401/],
    [{ code: "EADDRNOTAVAIL" }, /0\.0\.0\.0 is not an address of this host/],
  ])("%o", (err, line) => {
    const failure = listenFailure("GATEHOUSE_PROXY_LISTEN", { host: "0.0.0.0", port: 7401 }, err);
    expect(failure).not.toBeInstanceOf(SettingsError);
    expect(failure.message).toMatch(line);
  });
});

describe("sidecar settings that would refuse every token", () => {
  const guarded = compilePolicy("rules:\n  - match: { prefix: /api/ }\n    scopes: { allOf: [a] }\n");
  const withAudience = compilePolicy("default: { audiences: [orders] }\n");
  const allPublic = compilePolicy("default: { public: true }\n");

  it.each([
    ["no policy, no GATEHOUSE_AUDIENCES", defaultPolicy(), [], true],
    ["a policy naming no audience, no GATEHOUSE_AUDIENCES", guarded, [], true],
    ["no policy, GATEHOUSE_AUDIENCES set", defaultPolicy(), ["orders"], false],
    ["a policy naming an audience", withAudience, [], false],
    ["every route public", allPublic, [], false],
  ] as const)("%s: refused %s", (_name, policy, audiences, refused) => {
    const check = () => assertSomeTokenAccepted(policy, audiences);
    if (refused) expect(check).toThrow(/^GATEHOUSE_AUDIENCES: not set and .* every token would be refused/);
    else expect(check).not.toThrow();
  });

  it("a policy file that cannot be read or compiled is configuration, naming GATEHOUSE_POLICY_FILE", () => {
    expect(policyStartError("/etc/p.yaml", { code: "ENOENT" }).message).toBe(
      "GATEHOUSE_POLICY_FILE: /etc/p.yaml does not exist: fix the path or mount the file",
    );
    let compileError: unknown;
    try {
      compilePolicy("rulez: []\n", "/etc/p.yaml");
    } catch (err) {
      compileError = err;
    }
    const failure = policyStartError("/etc/p.yaml", compileError);
    expect(failure).toBeInstanceOf(SettingsError);
    expect(failure.message).toMatch(/^GATEHOUSE_POLICY_FILE: \/etc\/p\.yaml:1:1: rulez: unknown key/);
  });
});

describe("the token service's revocation transport", () => {
  it.each([
    ["stream", true, false, "stream"],
    ["stream", false, true, "stream"], // gatehouse dev: an in-process bus
    ["none", false, false, "none"],
    ["none", false, true, "stream"], // a bus handed in is used whatever the setting
  ] as const)("%s, REDIS_URL %s, bus %s → %s", (setting, redis, bus, transport) => {
    expect(revocationTransportOf(setting, redis, bus)).toBe(transport);
  });

  it.each([
    [
      "stream",
      false,
      /^GATEHOUSE_REVOCATION: no revocation stream to publish to: set REDIS_URL \(or REDIS_SENTINELS\), or GATEHOUSE_REVOCATION=none/,
    ],
    ["none", true, /^GATEHOUSE_REVOCATION: is none but REDIS_URL \(or REDIS_SENTINELS\) is set/],
  ] as const)("refuses %s with REDIS_URL %s", (setting, redis, line) => {
    expect(() => revocationTransportOf(setting, redis, false)).toThrow(SettingsError);
    expect(() => revocationTransportOf(setting, redis, false)).toThrow(line);
  });
});

describe("an unreachable token service, as the CLI says it", () => {
  it.each([
    [
      "No connection established. Last error: Error: connect ECONNREFUSED 127.0.0.1:7400. Resolution note: ",
      "connect ECONNREFUSED 127.0.0.1:7400",
    ],
    ["Name resolution failed for target dns:nohost:1", "Name resolution failed for target dns:nohost:1"],
    ["No connection established. Last error: x. Resolution note: dns said no", "x; dns said no"],
  ])("%s", (details, expected) => {
    expect(unreachableDetail(details)).toBe(expected);
  });
});
