import type { ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createLocalJWKSet, type JSONWebKeySet, jwtVerify } from "jose";
import { afterAll, beforeAll, expect, it } from "vitest";
import { createBenchSchema } from "../../bench/lib/bench-client.ts";
import { TokenService } from "../../services/gen/proto/gatehouse/v1/token_service_pb.ts";
import { dropSchema, testSchemaName } from "../support/database.ts";
import { startGatehouse } from "../support/gatehouse-process.ts";
import { freePort } from "../support/ports.ts";
import { TEST_DATABASE_URL } from "../support/services.ts";
import { grpcServiceClient } from "../support/token-clients.ts";

/**
 * Where sodium-native has no build for the platform, `gatehouse serve` still signs Ed25519 tokens
 * (through node:crypto, ed25519-signing.ts) and says so at start-up. Shown on a real process whose
 * module resolution hides sodium-native (support/without-libsodium).
 */
const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const HIDE_LIBSODIUM = join(ROOT, "test/support/without-libsodium/register.mjs");
const ISSUER = "https://ed25519-fallback.test";
const schema = testSchemaName("ed25519_fallback");
let secret = "";
let child: ChildProcess | undefined;

beforeAll(async () => {
  ({ secret } = await createBenchSchema(TEST_DATABASE_URL, schema));
}, 60_000);

afterAll(async () => {
  if (child !== undefined && child.exitCode === null) child.kill("SIGKILL");
  await dropSchema(schema);
});

it("without sodium-native, serve signs through node:crypto, warns why, and its tokens verify", async () => {
  const url = new URL(TEST_DATABASE_URL);
  url.searchParams.set("schema", schema);
  const [grpcPort, httpPort] = [await freePort(), await freePort()];
  const serve = await startGatehouse("serve", {
    nodeArgs: ["--import", HIDE_LIBSODIUM],
    env: {
      DATABASE_URL: url.toString(),
      GATEHOUSE_ISSUER: ISSUER,
      GATEHOUSE_MASTER_KEY: randomBytes(32).toString("base64"),
      GATEHOUSE_LISTEN: `127.0.0.1:${grpcPort}`,
      GATEHOUSE_HTTP_LISTEN: `127.0.0.1:${httpPort}`,
      GATEHOUSE_ADMIN_LISTEN: "127.0.0.1:0",
      GATEHOUSE_REVOCATION: "none",
    },
    readyMessage: "rpc servers listening",
  });
  child = serve.child;

  const signing = serve.lines.filter((l) => String(l.msg).startsWith("signing with key"));
  expect(signing).toHaveLength(1);
  expect(signing[0]).toMatchObject({
    level: "warn",
    algorithm: "EdDSA",
    signer: "node:crypto",
    msg: "signing with key through node:crypto, at about twice libsodium's CPU per token",
  });
  expect(signing[0]!.reason).toMatch(/^sodium-native did not load: No native build was found/);

  const client = grpcServiceClient(TokenService, grpcPort, { id: "bench", secret });
  try {
    const issued = await client.issue({ subject: "fallback-user", audience: ["orders"] });
    const jwks = (await (
      await fetch(`http://127.0.0.1:${httpPort}/.well-known/jwks.json`)
    ).json()) as JSONWebKeySet;
    const { payload, protectedHeader } = await jwtVerify(issued.accessToken, createLocalJWKSet(jwks), {
      issuer: ISSUER,
      audience: "orders",
      typ: "at+jwt",
    });
    expect(protectedHeader.alg).toBe("EdDSA");
    expect(payload.sub).toBe("fallback-user");
  } finally {
    client.close();
  }
  expect(await serve.stop()).toBe(0);
}, 60_000);
