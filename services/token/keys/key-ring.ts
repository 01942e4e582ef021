import { createHash, type KeyObject } from "node:crypto";
import type { PrismaClient } from "../../gen/prisma/client.ts";
import { GatehouseError } from "../../shared/errors/gatehouse-error.ts";
import type { Logger } from "../../shared/logging/index.ts";
import { recordAudit } from "../audit/audit-record.ts";
import type { AccessTokenClaims } from "../tokens/access-token-claims.ts";
import { createKeySigners } from "../tokens/access-token-signer.ts";
import { ed25519Implementation } from "../tokens/ed25519-signing.ts";
import { decryptPrivateKey, encryptPrivateKey } from "./key-encryption.ts";
import { withKeyLock } from "./key-lock.ts";
import {
  generateSigningKey,
  type PublicJwk,
  privateKeyFromPkcs8,
  publicKeyFromJwk,
  type SigningAlgorithm,
} from "./signing-key-material.ts";

/** Keys the JWKS publishes: about to sign, signing, or still verifying tokens they signed. */
const PUBLISHED = ["staged", "active", "retiring"] as const;

/** How often every replica looks for a key activated elsewhere (KeyRingOptions.pollMs default). */
export const KEY_RING_POLL_MS = 5000;

export interface ActiveKey {
  kid: string;
  algorithm: SigningAlgorithm;
  sign(claims: AccessTokenClaims): string;
  /** Signs an RFC 9701 introspection answer (`typ: token-introspection+jwt`). */
  signIntrospection(claims: object): string;
}

interface Jwks {
  keys: PublicJwk[];
  /** JSON text of `{ keys }`, served as is. */
  json: string;
  /** Strong ETag of `json`. */
  etag: string;
}

export interface KeyRing {
  /** Loads keys; creates and activates an Ed25519 key when the table has no active key. */
  start(): Promise<void>;
  active(): ActiveKey;
  jwks(): Jwks;
  /** Public key of a published key, for verifying our own tokens (Introspect, Revoke). */
  verificationKey(kid: string): { key: KeyObject; algorithm: SigningAlgorithm } | undefined;
  /** Reloads from the database now (also runs every `pollMs`). */
  reload(): Promise<void>;
  stop(): void;
}

export interface KeyRingOptions {
  prisma: PrismaClient;
  masterKey: Buffer;
  log: Logger;
  /** How often to look for a newly activated key; every replica picks it up within this. */
  pollMs?: number;
  /** Clock (epoch ms) for the rows written on first start; injectable for tests. */
  now?: () => number;
}

interface LoadedKey {
  kid: string;
  status: string;
  algorithm: SigningAlgorithm;
  publicJwk: PublicJwk;
  publicKey: KeyObject;
}

/**
 * The signing keys one token-service process uses: the active key (decrypted once, kept in memory),
 * and the published set for the JWKS and for verifying tokens we issued. Polls the table so every
 * replica notices a key activated elsewhere within seconds.
 */
export function createKeyRing(options: KeyRingOptions): KeyRing {
  const { prisma, masterKey, log } = options;
  let activeKey: ActiveKey | undefined;
  let published = new Map<string, LoadedKey>();
  let document: Jwks = render([]);
  let timer: NodeJS.Timeout | undefined;
  let fingerprint = "";

  async function load(): Promise<void> {
    const rows = await prisma.signingKey.findMany({
      where: { status: { in: [...PUBLISHED] } },
      orderBy: { createdAt: "asc" },
      select: { kid: true, status: true, algorithm: true, publicJwk: true, activatedAt: true },
    });
    const seen = rows.map((r) => `${r.kid}:${r.status}`).join(",");
    if (seen === fingerprint) return;
    const next = new Map<string, LoadedKey>();
    for (const r of rows) {
      const jwk = r.publicJwk as unknown as PublicJwk;
      next.set(r.kid, {
        kid: r.kid,
        status: r.status,
        algorithm: r.algorithm as SigningAlgorithm,
        publicJwk: jwk,
        publicKey: publicKeyFromJwk(jwk),
      });
    }
    const active = rows.find((r) => r.status === "active");
    if (active && active.kid !== activeKey?.kid) {
      const row = await prisma.signingKey.findUniqueOrThrow({
        where: { kid: active.kid },
        select: { privateKeyEnc: true },
      });
      const pkcs8 = decryptPrivateKey(row.privateKeyEnc, masterKey, active.kid);
      const algorithm = active.algorithm as SigningAlgorithm;
      const signingKey = { kid: active.kid, algorithm, privateKey: privateKeyFromPkcs8(pkcs8) };
      activeKey = { kid: active.kid, algorithm, ...createKeySigners(signingKey) };
      if (algorithm !== "EdDSA") log.info({ kid: active.kid, algorithm }, "signing with key");
      else if (ed25519Implementation.name === "libsodium")
        log.info({ kid: active.kid, algorithm, signer: "libsodium" }, "signing with key");
      else {
        const { reason } = ed25519Implementation;
        log.warn(
          { kid: active.kid, algorithm, signer: "node:crypto", reason },
          "signing with key through node:crypto, at about twice libsodium's CPU per token",
        );
      }
    } else if (!active) {
      activeKey = undefined;
    }
    published = next;
    document = render([...next.values()].map((k) => k.publicJwk));
    fingerprint = seen;
  }

  async function ensureActiveKey(): Promise<void> {
    await withKeyLock(prisma, async (tx) => {
      const existing = await tx.signingKey.findFirst({ where: { status: "active" }, select: { kid: true } });
      if (existing) return;
      const key = await generateSigningKey("EdDSA");
      const now = new Date((options.now ?? Date.now)());
      await tx.signingKey.create({
        data: {
          kid: key.kid,
          algorithm: key.algorithm,
          status: "active",
          publicJwk: key.publicJwk as object,
          privateKeyEnc: new Uint8Array(encryptPrivateKey(key.pkcs8, masterKey, key.kid)),
          createdAt: now,
          activatedAt: now,
        },
      });
      await recordAudit(tx, {
        actor: "system:key-ring",
        at: now,
        action: "signing_key.create",
        targetType: "signing_key",
        targetId: key.kid,
        outcome: "success",
        details: { algorithm: key.algorithm, status: "active", reason: "no active key on first start" },
      });
      log.warn({ kid: key.kid }, "no active signing key: created and activated an Ed25519 key");
    });
  }

  /**
   * Every key that may sign (staged or active) must open with this master key: a wrong
   * GATEHOUSE_MASTER_KEY stops start-up with one line, not the first activation weeks later.
   */
  async function checkMasterKey(): Promise<void> {
    const rows = await prisma.signingKey.findMany({
      where: { status: { in: ["staged", "active"] } },
      select: { kid: true, privateKeyEnc: true },
    });
    for (const r of rows) decryptPrivateKey(r.privateKeyEnc, masterKey, r.kid).fill(0);
  }

  return {
    async start() {
      await checkMasterKey();
      await load();
      if (!activeKey) {
        await ensureActiveKey();
        fingerprint = "";
        await load();
      }
      const pollMs = options.pollMs ?? KEY_RING_POLL_MS;
      timer = setInterval(() => {
        load().catch((err) => log.warn({ err: (err as Error).message }, "reloading signing keys failed"));
      }, pollMs);
      timer.unref();
    },
    active() {
      if (!activeKey)
        throw new GatehouseError("unavailable", "no active signing key", { retryAfterMs: 5000 });
      return activeKey;
    },
    jwks: () => document,
    verificationKey(kid) {
      const k = published.get(kid);
      return k ? { key: k.publicKey, algorithm: k.algorithm } : undefined;
    },
    async reload() {
      fingerprint = "";
      await load();
    },
    stop() {
      if (timer) clearInterval(timer);
    },
  };
}

function render(keys: PublicJwk[]): Jwks {
  const json = JSON.stringify({ keys });
  return { keys, json, etag: `"${createHash("sha256").update(json).digest("base64url").slice(0, 27)}"` };
}
