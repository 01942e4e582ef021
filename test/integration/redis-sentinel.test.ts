import { execFile, execFileSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import type { Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createRedisBus } from "../../services/shared/revocation/redis-bus.ts";
import { GuardedSentinelConnector } from "../../services/shared/revocation/redis-connector.ts";
import { redisTargetOf } from "../../services/shared/revocation/redis-target.ts";
import { encodeRevocationEntry } from "../../services/shared/revocation/revocation-entry.ts";
import { redisSettings } from "../../services/shared/settings/common-settings.ts";
import { loadSettings } from "../../services/shared/settings/settings.ts";
import { type PrivateSentinels, startPrivateSentinels } from "../reliability/support/private-sentinel.ts";

/**
 * The bus behind a real redis-sentinel (one sentinel, a primary and a replica, passwords and an ACL
 * user on both sides), built from the settings exactly as `gatehouse serve` and `gatehouse sidecar`
 * build it. The failover itself, with processes, is test/reliability/redis-sentinel-failover.test.ts.
 */

const BIN = fileURLToPath(new URL("../../bin/gatehouse.mjs", import.meta.url));
let group: PrivateSentinels;

beforeAll(async () => {
  group = await startPrivateSentinels(1);
  await group.settled();
}, 60_000);

afterAll(() => group?.destroy());

const busFrom = (env: Record<string, string>) => {
  const target = redisTargetOf(loadSettings(redisSettings, { env }));
  if (!target) throw new Error("no Redis target");
  return createRedisBus({
    url: target.url,
    redis: target.redis,
    name: "sentinel-test",
    connectTimeoutMs: 1000,
    reconnect: { minMs: 20, maxMs: 200 },
  });
};

describe("the revocation bus behind Sentinel", () => {
  it("appends, reads, ranges and trims on the primary the sentinel names, as the ACL user", async () => {
    const bus = busFrom(group.env);
    const stream = `sentinel-test:${Date.now()}`;
    try {
      const ids = await bus.append(stream, [
        ["e", "one"],
        ["e", "two"],
      ]);
      expect(ids).toHaveLength(2);
      expect((await bus.range(stream, "0-0", 10)).map((e) => e.fields)).toEqual([
        ["e", "one"],
        ["e", "two"],
      ]);
      expect(await bus.read(stream, ids![0]!, { blockMs: 100, count: 10 })).toEqual([
        { id: ids![1], fields: ["e", "two"] },
      ]);
      expect(await bus.info(stream)).toEqual({ lastGeneratedId: ids![1], length: 2 });
      // It went to the primary: the entries are there, written by the user REDIS_USERNAME names.
      const primary = group.admin(await group.primaryPort());
      expect(await primary.xlen(stream)).toBe(2);
      const clients = String(await primary.call("CLIENT", "LIST"));
      expect(clients).toMatch(/name=sentinel-test .*user=gatehouse/);
    } finally {
      await bus.close();
    }
  });

  it.each([
    ["a wrong sentinel password", { REDIS_SENTINEL_PASSWORD: "wrong" }],
    ["a wrong data-node password", { REDIS_PASSWORD: "wrong" }],
    ["an unknown master name", { REDIS_SENTINEL_MASTER: "nobody" }],
  ])("fails its commands, never hangs, with %s", async (_name, override) => {
    const bus = busFrom({ ...group.env, ...override });
    try {
      await expect(bus.info("sentinel-test:any")).rejects.toThrow(/redis/i);
    } finally {
      await bus.close();
    }
  });

  it("control: ioredis's own Sentinel connector throws a socket's second error as unhandled", async () => {
    const target = redisTargetOf(loadSettings(redisSettings, { env: group.env }))!;
    const redis = new Redis({ ...target.redis, maxRetriesPerRequest: 0 });
    redis.on("error", () => {});
    try {
      expect(await redis.ping()).toBe("PONG");
      const socket = (redis as unknown as { stream: Socket }).stream;
      socket.emit("error", new Error("first: handled by ioredis"));
      expect(() => socket.emit("error", new Error("second: nobody listens"))).toThrow(/second/);
    } finally {
      redis.disconnect();
    }
  });

  it("guards the sockets it opens: a second error on one is not thrown (redis/ioredis#962)", async () => {
    const target = redisTargetOf(loadSettings(redisSettings, { env: group.env }))!;
    const redis = new Redis({
      ...target.redis,
      Connector: GuardedSentinelConnector,
      maxRetriesPerRequest: 0,
    });
    redis.on("error", () => {});
    try {
      expect(await redis.ping()).toBe("PONG");
      const socket = (redis as unknown as { stream: Socket }).stream;
      expect(socket.remotePort).toBe(await group.primaryPort());
      socket.emit("error", new Error("first"));
      expect(() => socket.emit("error", new Error("second"))).not.toThrow();
    } finally {
      redis.disconnect();
    }
  });
});

describe("Sentinel over TLS (REDIS_TLS, REDIS_SENTINEL_TLS), as `gatehouse token inspect` reads the stream", () => {
  let tlsGroup: PrivateSentinels;
  let dir: string;
  const stream = "gatehouse:revocations";
  const jti = "sentinel-tls-jti";
  const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString("base64url");
  const exp = Math.floor(Date.now() / 1000) + 600;
  // Never verified here (no --jwks): inspect decodes it and asks the stream about its jti.
  const token = `${b64({ alg: "EdDSA", typ: "at+jwt", kid: "k" })}.${b64({ sub: "erin", jti, exp })}.${Buffer.from("sig").toString("base64url")}`;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "gatehouse-sentinel-tls-"));
    execFileSync(
      "openssl",
      [
        ...[
          "req",
          "-x509",
          "-newkey",
          "ec",
          "-pkeyopt",
          "ec_paramgen_curve:prime256v1",
          "-nodes",
          "-days",
          "1",
        ],
        ...["-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        ...["-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem")],
      ],
      { stdio: "ignore" },
    );
    const cert = join(dir, "cert.pem");
    tlsGroup = await startPrivateSentinels(1, {
      tls: { certFile: cert, keyFile: join(dir, "key.pem"), caFile: cert },
    });
    await tlsGroup.settled();
    const primary = tlsGroup.admin(await tlsGroup.primaryPort());
    await primary.xadd(
      stream,
      "*",
      ...encodeRevocationEntry({ type: "token_revoked", id: randomUUID(), at: Date.now(), until: exp, jti }),
    );
  }, 60_000);

  afterAll(async () => {
    await tlsGroup?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  const inspect = (env: Record<string, string>) =>
    new Promise<{ code: number | null; stdout: string }>((resolve) => {
      execFile(
        process.execPath,
        [BIN, "token", "inspect", "--json", token],
        { env: { PATH: process.env.PATH, HOME: process.env.HOME, ...tlsGroup.env, ...env }, timeout: 30_000 },
        (err, stdout) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout }),
      );
    });

  it("finds the revocation through TLS sentinels and a TLS primary, trusting NODE_EXTRA_CA_CERTS", async () => {
    const run = await inspect({
      REDIS_TLS: "true",
      REDIS_SENTINEL_TLS: "true",
      NODE_EXTRA_CA_CERTS: join(dir, "cert.pem"),
    });
    expect(run.code).toBe(1);
    expect(JSON.parse(run.stdout).revocation).toMatchObject({
      checked: true,
      verdict: "revoked",
      reason: "token_revoked",
    });
  }, 40_000);

  it.each([
    ["without the CA, the certificate is refused", { REDIS_TLS: "true", REDIS_SENTINEL_TLS: "true" }, false],
    ["without REDIS_SENTINEL_TLS, the TLS-only sentinel cannot be asked", { REDIS_TLS: "true" }, true],
  ])(
    "says it could not check: %s",
    async (_name, env, trustCa) => {
      const run = await inspect({ ...env, ...(trustCa && { NODE_EXTRA_CA_CERTS: join(dir, "cert.pem") }) });
      expect(run.code).toBe(0);
      expect(JSON.parse(run.stdout).revocation).toMatchObject({
        checked: false,
        why: expect.stringMatching(/^Redis: /),
      });
    },
    40_000,
  );
});
