import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLogger } from "../../services/shared/logging/index.ts";
import { loadSettings } from "../../services/shared/settings/index.ts";
import type { Tracing } from "../../services/shared/tracing/tracing.ts";
import {
  type SidecarSettings,
  type StartSidecarOptions,
  startSidecar,
} from "../../services/sidecar/sidecar.ts";
import { sidecarSettings } from "../../services/sidecar/sidecar-settings.ts";
import { encryptPrivateKey } from "../../services/token/keys/key-encryption.ts";
import { generateSigningKey, type SigningAlgorithm } from "../../services/token/keys/signing-key-material.ts";
import { type RunningTokenService, startTokenService } from "../../services/token/token-service.ts";
import { tokenServiceSettings } from "../../services/token/token-service-settings.ts";
import type { TestDatabase } from "./database.ts";
import { grpcTokenClient } from "./token-clients.ts";
import { createTestClient } from "./token-fixtures.ts";

export const ISSUER = "https://auth.test";
export const silentLogger = () => createLogger({ level: "silent", component: "test", pretty: false });

export interface TestTokenService {
  service: RunningTokenService;
  masterKey: Buffer;
  /** Issues a session for `subject` as the `web` client; returns its access token and session id. */
  issue(
    subject: string,
    scopes: string[],
    audience?: string[],
  ): Promise<{ token: string; sessionId: string }>;
  /** Makes a new key of `algorithm` the active one (the old one retiring) and reloads the key ring. */
  rotateKey(algorithm: SigningAlgorithm): Promise<string>;
  /** `http://127.0.0.1:<port>`: what sidecars get as GATEHOUSE_TOKEN_SERVICE_URL. */
  url: string;
}

/** A real token service on the test database, with an issuing client `web`; `tracing` as `gatehouse serve` would start it. */
export async function startTestTokenService(
  tdb: TestDatabase,
  options: { tracing?: Tracing } = {},
): Promise<TestTokenService> {
  const { prisma } = tdb.db;
  const web = await createTestClient(prisma, {
    id: "web",
    roles: ["issuer"],
    allowedAudiences: ["orders", "billing"],
    allowedScopes: ["orders:read", "orders:write", "billing:read"],
  });
  const masterKey = randomBytes(32);
  const config = loadSettings(tokenServiceSettings, {
    env: {
      DATABASE_URL: tdb.url,
      GATEHOUSE_ISSUER: ISSUER,
      GATEHOUSE_MASTER_KEY: masterKey.toString("base64"),
      GATEHOUSE_LISTEN: "127.0.0.1:0",
      GATEHOUSE_HTTP_LISTEN: "127.0.0.1:0",
      GATEHOUSE_ADMIN_LISTEN: "127.0.0.1:0",
      GATEHOUSE_JWKS_MAX_AGE: "5m",
      GATEHOUSE_KEY_ROTATION: "off",
      GATEHOUSE_SHUTDOWN_GRACE: "1s",
      GATEHOUSE_REVOCATION: "none",
    },
  });
  const service = await startTokenService({
    settings: config,
    database: { kind: "postgres", url: tdb.url },
    logger: silentLogger(),
    tracing: options.tracing,
  });
  const client = grpcTokenClient(service.grpcPort, { id: "web", secret: web.secret });
  return {
    service,
    masterKey,
    url: `http://127.0.0.1:${service.httpPort}`,
    async issue(subject, scopes, audience = ["orders"]) {
      const r = await client.issue({ subject, audience, scopes });
      return { token: r.accessToken, sessionId: r.sessionId };
    },
    async rotateKey(algorithm) {
      const key = await generateSigningKey(algorithm);
      const now = new Date();
      await prisma.$transaction([
        prisma.signingKey.updateMany({
          where: { status: "active" },
          data: { status: "retiring", retiringAt: now },
        }),
        prisma.signingKey.create({
          data: {
            kid: key.kid,
            algorithm: key.algorithm,
            status: "active",
            publicJwk: key.publicJwk as object,
            privateKeyEnc: new Uint8Array(encryptPrivateKey(key.pkcs8, masterKey, key.kid)),
            createdAt: now,
            activatedAt: now,
          },
        }),
      ]);
      await service.keys.reload();
      return key.kid;
    },
  };
}

/** Sidecar settings as `gatehouse sidecar` would parse them from this environment (ports 0, loopback). */
export function testSidecarSettings(env: Record<string, string | undefined>): SidecarSettings {
  return loadSettings(sidecarSettings, {
    env: {
      GATEHOUSE_ISSUER: ISSUER,
      GATEHOUSE_AUDIENCES: "orders",
      GATEHOUSE_PROXY_LISTEN: "127.0.0.1:0",
      GATEHOUSE_CONTROL_LISTEN: "127.0.0.1:0",
      GATEHOUSE_SHUTDOWN_GRACE: "1s",
      GATEHOUSE_LOG_LEVEL: "silent",
      ...env,
    },
  });
}

/**
 * Starts a sidecar and waits until it has its keys. Without a `revocation` state it follows no
 * stream, so `GATEHOUSE_REVOCATION=none` is set for it (an `env` value still wins).
 */
export async function startTestSidecar(
  env: Record<string, string | undefined>,
  options: Partial<Omit<StartSidecarOptions, "settings">> = {},
) {
  const revocation = options.revocation === undefined ? "none" : "stream";
  const sidecar = await startSidecar({
    settings: testSidecarSettings({ GATEHOUSE_REVOCATION: revocation, ...env }),
    logger: silentLogger(),
    ...options,
  });
  await sidecar.ready();
  return sidecar;
}

const policyDirs: string[] = [];

/** Writes a policy file into a fresh temporary directory and returns its path; see {@link removePolicies}. */
export function writePolicy(text: string, name = "policy.yaml"): string {
  const dir = mkdtempSync(join(tmpdir(), "gatehouse-policy-"));
  policyDirs.push(dir);
  const file = join(dir, name);
  writeFileSync(file, text);
  return file;
}

/** Removes every directory {@link writePolicy} made in this process: call it in `afterAll`, after the sidecars stopped. */
export function removePolicies(): void {
  for (const dir of policyDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
}
