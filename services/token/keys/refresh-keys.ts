import { hkdfSync, randomBytes } from "node:crypto";
import type { PrismaClient } from "../../gen/prisma/client.ts";
import { GatehouseError } from "../../shared/errors/gatehouse-error.ts";
import type { Logger } from "../../shared/logging/index.ts";
import { type AuditActor, recordAudit } from "../audit/audit-record.ts";
import { decryptPrivateKey, encryptPrivateKey } from "./key-encryption.ts";
import { type KeyTransaction, withKeyLock } from "./key-lock.ts";

/**
 * Server secrets of the refresh-token machinery, each with its own key id, stored encrypted under the
 * master key (table `refresh_keys`). Today one purpose: `successor`, the HMAC key deriving a rotated
 * token's successor. The active key derives new successors; the kid is recorded with the rotation, and
 * replaced keys stay so a grace replay derives with the key that produced the successor.
 */
export const SUCCESSOR_PURPOSE = "successor";

/**
 * The first successor key holds the value every earlier version derived from the master key, so
 * tokens rotated before refresh keys existed (successor_kid NULL) replay to the successor they got.
 */
export const LEGACY_SUCCESSOR_KID = "rk-successor-legacy";

/** Associated data of a refresh key's ciphertext: it cannot pass for a signing key's, or another kid's. */
const aad = (kid: string) => `refresh-key:${kid}`;

function legacySuccessorKey(masterKey: Buffer): Buffer {
  return Buffer.from(
    hkdfSync("sha256", masterKey, Buffer.alloc(0), "gatehouse refresh-token successor v1", 32),
  );
}

export interface SuccessorKey {
  kid: string;
  key: Buffer;
}

export interface SuccessorKeys {
  /** Loads the keys; seeds the legacy-valued key when there is none. */
  start(): Promise<void>;
  /** The key new successors are derived with. */
  active(): SuccessorKey;
  /** The key with this kid (null: a row rotated before refresh keys existed), reloading once if unknown. */
  byKid(kid: string | null): Promise<SuccessorKey>;
  /** Reloads from the database now (also runs every `pollMs`). */
  reload(): Promise<void>;
  stop(): void;
}

export interface SuccessorKeysOptions {
  prisma: PrismaClient;
  masterKey: Buffer;
  log: Logger;
  pollMs: number;
  now?: () => number;
}

export function createSuccessorKeys(options: SuccessorKeysOptions): SuccessorKeys {
  const { prisma, masterKey, log } = options;
  let keys = new Map<string, Buffer>();
  let activeKid: string | undefined;
  let timer: NodeJS.Timeout | undefined;

  async function load(): Promise<void> {
    const rows = await prisma.refreshKey.findMany({
      where: { purpose: SUCCESSOR_PURPOSE },
      select: { kid: true, status: true, secretEnc: true },
    });
    const next = new Map<string, Buffer>();
    for (const r of rows)
      next.set(r.kid, keys.get(r.kid) ?? decryptPrivateKey(r.secretEnc, masterKey, aad(r.kid)));
    const active = rows.find((r) => r.status === "active")?.kid;
    if (active !== activeKid && active !== undefined)
      log.info({ kid: active }, "deriving refresh successors with key");
    keys = next;
    activeKid = active;
  }

  async function seed(): Promise<void> {
    await withKeyLock(prisma, async (tx) => {
      if ((await tx.refreshKey.count({ where: { purpose: SUCCESSOR_PURPOSE } })) > 0) return;
      const secret = legacySuccessorKey(masterKey);
      await tx.refreshKey.create({
        data: {
          kid: LEGACY_SUCCESSOR_KID,
          purpose: SUCCESSOR_PURPOSE,
          status: "active",
          secretEnc: new Uint8Array(encryptPrivateKey(secret, masterKey, aad(LEGACY_SUCCESSOR_KID))),
          createdAt: new Date((options.now ?? Date.now)()),
        },
      });
      secret.fill(0);
    });
  }

  const get = (kid: string): SuccessorKey | undefined => {
    const key = keys.get(kid);
    return key ? { kid, key } : undefined;
  };

  return {
    async start() {
      await load();
      if (activeKid === undefined) {
        await seed();
        await load();
      }
      timer = setInterval(() => {
        load().catch((err) => log.warn({ err: (err as Error).message }, "reloading refresh keys failed"));
      }, options.pollMs);
      timer.unref();
    },
    active() {
      const key = activeKid === undefined ? undefined : get(activeKid);
      if (!key)
        throw new GatehouseError("unavailable", "no active refresh successor key", { retryAfterMs: 5000 });
      return key;
    },
    async byKid(kid) {
      const wanted = kid ?? LEGACY_SUCCESSOR_KID;
      // Rotated on another replica since this one last looked.
      if (!keys.has(wanted)) await load();
      const key = get(wanted);
      if (!key) throw new GatehouseError("internal", `refresh successor key ${wanted} is missing`);
      return key;
    },
    reload: load,
    stop() {
      if (timer) clearInterval(timer);
    },
  };
}

/**
 * Makes a new random successor key the active one; the one it replaces stays (status `previous`) for
 * grace replays of tokens it derived successors for. Audited as `refresh_key.rotate`.
 */
export async function rotateSuccessorKey(
  prisma: PrismaClient,
  masterKey: Buffer,
  by: AuditActor,
  now: () => number = Date.now,
): Promise<{ kid: string; replaced: string | null }> {
  return withKeyLock(prisma, async (tx: KeyTransaction) => {
    const at = new Date(now());
    const current = await tx.refreshKey.findFirst({
      where: { purpose: SUCCESSOR_PURPOSE, status: "active" },
      select: { kid: true },
    });
    if (current) {
      await tx.refreshKey.update({
        where: { kid: current.kid },
        data: { status: "previous", replacedAt: at },
      });
    }
    const kid = `rk-successor-${randomBytes(8).toString("hex")}`;
    const secret = randomBytes(32);
    await tx.refreshKey.create({
      data: {
        kid,
        purpose: SUCCESSOR_PURPOSE,
        status: "active",
        secretEnc: new Uint8Array(encryptPrivateKey(secret, masterKey, aad(kid))),
        createdAt: at,
      },
    });
    secret.fill(0);
    await recordAudit(tx, {
      ...by,
      at,
      action: "refresh_key.rotate",
      targetType: "refresh_key",
      targetId: kid,
      outcome: "success",
      details: { purpose: SUCCESSOR_PURPOSE, replaced: current?.kid ?? null },
    });
    return { kid, replaced: current?.kid ?? null };
  });
}

/** Re-encrypts every refresh key from `oldKey` to `newKey` inside a rewrap's transaction. */
export async function rewrapRefreshKeys(
  tx: KeyTransaction,
  oldKey: Buffer,
  newKey: Buffer,
): Promise<{ rewrapped: number; alreadyNew: number }> {
  const rows = await tx.refreshKey.findMany({ select: { kid: true, secretEnc: true } });
  const result = { rewrapped: 0, alreadyNew: 0 };
  for (const row of rows) {
    let secret: Buffer;
    try {
      secret = decryptPrivateKey(row.secretEnc, oldKey, aad(row.kid));
    } catch (cause) {
      try {
        decryptPrivateKey(row.secretEnc, newKey, aad(row.kid)).fill(0);
        result.alreadyNew++;
        continue;
      } catch {
        throw new GatehouseError(
          "failed_precondition",
          `refresh key ${row.kid} opens with neither the old nor the new master key: nothing was changed`,
          { cause },
        );
      }
    }
    const sealed = encryptPrivateKey(secret, newKey, aad(row.kid));
    secret.fill(0);
    await tx.refreshKey.update({ where: { kid: row.kid }, data: { secretEnc: new Uint8Array(sealed) } });
    result.rewrapped++;
  }
  return result;
}
