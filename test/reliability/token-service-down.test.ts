import { generateKeyPairSync, randomBytes, randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type TestDatabase, useTestDatabase } from "../support/database.ts";
import { type TestRedis, useTestRedis } from "../support/redis.ts";
import { createTestClient } from "../support/token-fixtures.ts";
import {
  ISSUER,
  type SidecarProcess,
  startSidecarProcess,
  startTokenServiceProcess,
  type TokenServiceProcess,
} from "./support/gatehouse-processes.ts";
import { rememberSecrets } from "./support/run-directory.ts";
import { report, seconds, Teardown } from "./support/scenario.ts";
import { checkVerdicts, formatCounts, issueSessions } from "./support/sessions.ts";
import { CallTally, type TokenCalls, tokenCalls } from "./support/token-calls.ts";
import { sleep, waitFor } from "./support/wait.ts";

/**
 * Token service down: two sidecars keep verifying with the keys they cached (valid tokens pass) and
 * keep enforcing revocations made before the outage, through several failed background JWKS
 * refreshes (the JWKS max-age is 2 s, so the sidecars try every 5 s). A token signed by a key they
 * never saw is still refused, and asking for it does not disturb the cached keys.
 */

const OUTAGE_MS = 12_000;

const teardown = new Teardown();
let tdb: TestDatabase;
let testRedis: TestRedis;
let service: TokenServiceProcess;
let sidecars: { name: string; sidecar: SidecarProcess }[];
let calls: TokenCalls;

beforeAll(async () => {
  tdb = await useTestDatabase("reliability_service_down");
  teardown.add("test schema", () => tdb.drop());
  testRedis = await useTestRedis("rel-down");
  teardown.add("Redis keys", () => testRedis.cleanup());
  const stream = `${testRedis.prefix}revocations`;
  const app = await createTestClient(tdb.db.prisma, { id: "app", roles: ["issuer"] });
  rememberSecrets(app.secret);
  service = await startTokenServiceProcess({
    name: "down-token-service",
    databaseUrl: tdb.url,
    redisUrl: testRedis.url,
    masterKey: randomBytes(32),
    env: { GATEHOUSE_REVOCATION_STREAM: stream, GATEHOUSE_JWKS_MAX_AGE: "2s" },
  });
  teardown.add("token service", () => service.stop());
  sidecars = await Promise.all(
    ["down-sidecar-a", "down-sidecar-b"].map(async (name) => {
      const sidecar = await startSidecarProcess({
        name,
        tokenServiceUrl: service.url,
        redisUrl: testRedis.url,
        stream,
        env: { GATEHOUSE_JWKS_COOLDOWN: "1s" },
      });
      teardown.add(name, () => sidecar.stop());
      return { name, sidecar };
    }),
  );
  calls = tokenCalls(service.grpcPort, { id: "app", secret: app.secret });
  teardown.add("grpc client", () => calls.close());
});

afterAll(() => teardown.run());

/** A well-formed access token signed by a key no JWKS ever published. */
async function foreignToken(): Promise<string> {
  const { privateKey } = generateKeyPairSync("ed25519");
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ client_id: "app", scope: "orders:read", sid: randomUUID(), sv: 1 })
    .setProtectedHeader({ alg: "EdDSA", typ: "at+jwt", kid: "never-published" })
    .setIssuer(ISSUER)
    .setSubject("mallory")
    .setAudience("orders")
    .setIssuedAt(now)
    .setExpirationTime(now + 600)
    .setJti(randomUUID())
    .sign(privateKey);
}

describe("token service down", () => {
  it("sidecars keep verifying with cached keys and keep enforcing earlier revocations", async () => {
    const sessions = await issueSessions(calls, "down-user", 40);
    const tally = new CallTally();
    await Promise.all(
      sessions.slice(0, 15).map(async (s, i) => {
        const target =
          i < 10
            ? { case: "sessionId" as const, value: s.sessionId }
            : { case: "accessToken" as const, value: s.accessToken };
        const r = await calls.revoke({ target, reason: "reliability: before outage" });
        tally.add(r);
      }),
    );
    const revoked = sessions
      .slice(0, 15)
      .map((s) => ({ label: `revoked ${s.subject}`, token: s.accessToken }));
    const kept = sessions.slice(15).map((s) => ({ label: `kept ${s.subject}`, token: s.accessToken }));
    await waitFor("sidecars to apply the revocations made before the outage", async () => {
      const v = await checkVerdicts(sidecars, revoked, kept);
      return v.wrong.length === 0 || undefined;
    });

    const exit = await service.stop();
    const downAt = Date.now();
    const jwksDown = await fetch(`${service.url}/.well-known/jwks.json`).then(
      () => false,
      () => true,
    );
    const forged = await foreignToken();
    rememberSecrets(forged);
    const wrong: string[] = [];
    const forgedAnswers = new Map<string, number>();
    const readiness = new Map<string, number>();
    let rounds = 0;
    let answers = 0;
    while (Date.now() - downAt < OUTAGE_MS) {
      rounds++;
      const v = await checkVerdicts(sidecars, revoked, kept);
      answers += v.checked;
      wrong.push(...v.wrong.map((w) => `+${seconds(Date.now() - downAt)}: ${w}`));
      for (const { sidecar } of sidecars) {
        const f = await sidecar.authz(forged);
        forgedAnswers.set(`${f.status} ${f.code}`, (forgedAnswers.get(`${f.status} ${f.code}`) ?? 0) + 1);
        const status = await sidecar.readyStatus();
        readiness.set(String(status), (readiness.get(String(status)) ?? 0) + 1);
      }
      await sleep(1500);
    }

    // The outage must have been felt: each sidecar tried to refresh its JWKS and kept the old set.
    const failedFetches = sidecars.map(
      ({ sidecar }) =>
        readFileSync(sidecar.process.logFile, "utf8")
          .split("\n")
          .filter((line) => line.includes("JWKS fetch failed; keeping the last good set")).length,
    );

    report("Token service down", {
      "what it did": `40 sessions, 15 revoked (10 sessions, 5 access tokens) before stopping the token service (exit ${exit.code ?? exit.signal}); 2 sidecars checked for ${seconds(Date.now() - downAt)} of outage`,
      "Revoke calls": tally.toString(),
      "JWKS endpoint down": String(jwksDown),
      "sidecar answers during outage": `${answers} in ${rounds} rounds, ${wrong.length} wrong`,
      "token signed by an unknown key": formatCounts(forgedAnswers),
      "sidecar /readyz during outage": formatCounts(readiness),
      "failed JWKS fetches (kept last good set)": failedFetches.join(" and "),
    });

    expect(tally.unexpected([])).toEqual([]);
    expect(jwksDown, "the token service must really be down").toBe(true);
    expect(wrong).toEqual([]);
    expect(
      Math.min(...failedFetches),
      "each sidecar must have tried its JWKS during the outage",
    ).toBeGreaterThan(0);
    expect(
      [...forgedAnswers.keys()].every((k) => k.startsWith("401")),
      formatCounts(forgedAnswers),
    ).toBe(true);
  });
});
