import { hkdfSync, randomBytes } from "node:crypto";
import type { PrismaClient } from "../../gen/prisma/client.ts";
import { GatehouseError } from "../../shared/errors/gatehouse-error.ts";
import type { Logger } from "../../shared/logging/index.ts";
import { type AuditActor, recordAudit } from "../audit/audit-record.ts";
import { decryptPrivateKey, encryptPrivateKey } from "./key-encryption.ts";
import { type KeyTransaction, withKeyLock } from "./key-lock.ts";

/**
 * Server secrets of the refresh-token machinery, each with its own key id, stored encrypted under the
 * master key (table `refresh_keys`), one active key per purpose:
 * - `successor`: the HMAC key deriving a rotated token's successor. The kid is recorded with the
 *   rotation, and replaced keys stay so a grace replay derives with the key that produced the successor.
 * - `mac`: the HMAC key authenticating a v2 refresh token (tokens/refresh-token-format.ts), named by
 *   the kid the token carries. Replaced keys stay so the tokens they signed keep verifying.
 */
export const SUCCESSOR_PURPOSE = "successor";
export const MAC_PURPOSE = "mac";
export type RefreshKeyPurpose = typeof SUCCESSOR_PURPOSE | typeof MAC_PURPOSE;

/**
 * The first successor key holds the value every earlier version derived from the master key, so
 * tokens rotated before refresh keys existed (successor_kid NULL) replay to the successor they got.
 */
export const LEGACY_SUCCESSOR_KID = "rk-successor-legacy";

/** Associated data of a refresh key's ciphertext: it cannot pass for a signing key's, or another kid's. */
const aad = (kid: string) => `refresh-key:${kid}`;

/** The fewest milliseconds between two reloads asked for by a kid nobody here knows (a made-up token's). */
const UNKNOWN_KID_RELOAD_COOLDOWN_MS = 1000;

function legacySuccessorKey(masterKey: Buffer): Buffer {
  return Buffer.from(
    hkdfSync("sha256", masterKey, Buffer.alloc(0), "gatehouse refresh-token successor v1", 32),
  );
}

/** The first key of a purpose: the successor key keeps the legacy value, a MAC key has none to keep. */
function firstKey(purpose: RefreshKeyPurpose, masterKey: Buffer): { kid: string; secret: Buffer } {
  return purpose === SUCCESSOR_PURPOSE
    ? { kid: LEGACY_SUCCESSOR_KID, secret: legacySuccessorKey(masterKey) }
    : { kid: newKid(purpose), secret: randomBytes(32) };
}

const newKid = (purpose: RefreshKeyPurpose) => `rk-${purpose}-${randomBytes(8).toString("hex")}`;

interface RefreshKey {
  kid: string;
  key: Buffer;
}

export interface RefreshKeys {
  /** Loads the keys; seeds the first key when there is none. */
  start(): Promise<void>;
  /** The key new successors are derived (new tokens MACed) with. */
  active(): RefreshKey;
  /** The key with this kid (null: a row rotated before refresh keys existed), reloading once if unknown. */
  byKid(kid: string | null): Promise<RefreshKey>;
  /**
   * The key with a kid taken from a presented token, or undefined: an unknown kid reloads at most
   * once a second, so made-up kids cannot make every request a database read.
   */
  find(kid: string): Promise<RefreshKey | undefined>;
  /** Reloads from the database now (also runs every `pollMs`). */
  reload(): Promise<void>;
  stop(): void;
}

export interface RefreshKeysOptions {
  prisma: PrismaClient;
  masterKey: Buffer;
  log: Logger;
  pollMs: number;
  now?: () => number;
}

export const createSuccessorKeys = (options: RefreshKeysOptions) =>
  createRefreshKeys(SUCCESSOR_PURPOSE, options);
export const createMacKeys = (options: RefreshKeysOptions) => createRefreshKeys(MAC_PURPOSE, options);

function createRefreshKeys(purpose: RefreshKeyPurpose, options: RefreshKeysOptions): RefreshKeys {
  const { prisma, masterKey, log } = options;
  const now = options.now ?? Date.now;
  let keys = new Map<string, Buffer>();
  let activeKid: string | undefined;
  let timer: NodeJS.Timeout | undefined;
  let lastUnknownReload = Number.NEGATIVE_INFINITY;

  async function load(): Promise<void> {
    const rows = await prisma.refreshKey.findMany({
      where: { purpose },
      select: { kid: true, status: true, secretEnc: true },
    });
    const next = new Map<string, Buffer>();
    for (const r of rows)
      next.set(r.kid, keys.get(r.kid) ?? decryptPrivateKey(r.secretEnc, masterKey, aad(r.kid)));
    const active = rows.find((r) => r.status === "active")?.kid;
    if (active !== activeKid && active !== undefined)
      log.info({ kid: active, purpose }, "refresh key active");
    keys = next;
    activeKid = active;
  }

  async function seed(): Promise<void> {
    await withKeyLock(prisma, async (tx) => {
      if ((await tx.refreshKey.count({ where: { purpose } })) > 0) return;
      const { kid, secret } = firstKey(purpose, masterKey);
      await tx.refreshKey.create({
        data: {
          kid,
          purpose,
          status: "active",
          secretEnc: new Uint8Array(encryptPrivateKey(secret, masterKey, aad(kid))),
          createdAt: new Date(now()),
        },
      });
      secret.fill(0);
    });
  }

  const get = (kid: string): RefreshKey | undefined => {
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
        throw new GatehouseError("unavailable", `no active refresh ${purpose} key`, { retryAfterMs: 5000 });
      return key;
    },
    async byKid(kid) {
      const wanted = kid ?? LEGACY_SUCCESSOR_KID;
      // Rotated on another replica since this one last looked.
      if (!keys.has(wanted)) await load();
      const key = get(wanted);
      if (!key) throw new GatehouseError("internal", `refresh ${purpose} key ${wanted} is missing`);
      return key;
    },
    async find(kid) {
      const known = get(kid);
      // Real time, not the injectable clock: this protects the database, whatever time tests pretend.
      if (known || performance.now() - lastUnknownReload < UNKNOWN_KID_RELOAD_COOLDOWN_MS) return known;
      lastUnknownReload = performance.now();
      await load();
      return get(kid);
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
export const rotateSuccessorKey = (
  prisma: PrismaClient,
  masterKey: Buffer,
  by: AuditActor,
  now: () => number = Date.now,
) => rotateRefreshKey(prisma, masterKey, SUCCESSOR_PURPOSE, by, now);

/**
 * Makes a new random key of `purpose` the active one; the one it replaces stays (status `previous`):
 * a successor key for grace replays of the successors it derived, a MAC key for the tokens it signed.
 * Audited as `refresh_key.rotate`.
 */
export async function rotateRefreshKey(
  prisma: PrismaClient,
  masterKey: Buffer,
  purpose: RefreshKeyPurpose,
  by: AuditActor,
  now: () => number = Date.now,
): Promise<{ kid: string; replaced: string | null }> {
  return withKeyLock(prisma, async (tx: KeyTransaction) => {
    const at = new Date(now());
    const current = await tx.refreshKey.findFirst({
      where: { purpose, status: "active" },
      select: { kid: true },
    });
    if (current) {
      await tx.refreshKey.update({
        where: { kid: current.kid },
        data: { status: "previous", replacedAt: at },
      });
    }
    const kid = newKid(purpose);
    const secret = randomBytes(32);
    await tx.refreshKey.create({
      data: {
        kid,
        purpose,
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
      details: { purpose, replaced: current?.kid ?? null },
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
