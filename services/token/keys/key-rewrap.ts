import type { PrismaClient } from "../../gen/prisma/client.ts";
import { GatehouseError } from "../../shared/errors/gatehouse-error.ts";
import { type AuditActor, recordAudit } from "../audit/audit-record.ts";
import { decryptPrivateKey, encryptPrivateKey } from "./key-encryption.ts";
import { withKeyLock } from "./key-lock.ts";
import { rewrapRefreshKeys } from "./refresh-keys.ts";

export interface RewrapResult {
  /** Keys (signing and refresh keys) re-encrypted from the old master key to the new one. */
  rewrapped: number;
  /** Keys already under the new master key (an earlier, interrupted or repeated rewrap). */
  alreadyNew: number;
}

/**
 * Re-encrypts every signing key row (all states: a retired key's row is still a private key) and every
 * refresh key (keys/refresh-keys.ts; re-encrypted, never changed, so grace replays still derive the
 * successors they handed out) from `oldKey` to `newKey` in one transaction: all rows move or none
 * does. Running it again is harmless.
 * Replicas keep signing with the key they hold in memory; restart them with the new master key.
 */
export async function rewrapKeys(
  prisma: PrismaClient,
  oldKey: Buffer,
  newKey: Buffer,
  by: AuditActor = { actor: "system:cli" },
  now: () => number = Date.now,
): Promise<RewrapResult> {
  if (oldKey.length !== 32 || newKey.length !== 32) throw new TypeError("master keys are 32 bytes");
  return withKeyLock(prisma, async (tx) => {
    const rows = await tx.signingKey.findMany({ select: { kid: true, privateKeyEnc: true } });
    const result: RewrapResult = { rewrapped: 0, alreadyNew: 0 };
    for (const row of rows) {
      let pkcs8: Buffer;
      try {
        pkcs8 = decryptPrivateKey(row.privateKeyEnc, oldKey, row.kid);
      } catch (cause) {
        if (opensWith(row.privateKeyEnc, newKey, row.kid)) {
          result.alreadyNew++;
          continue;
        }
        throw new GatehouseError(
          "failed_precondition",
          `signing key ${row.kid} opens with neither the old nor the new master key: nothing was changed`,
          { cause },
        );
      }
      const sealed = encryptPrivateKey(pkcs8, newKey, row.kid);
      pkcs8.fill(0);
      await tx.signingKey.update({
        where: { kid: row.kid },
        data: { privateKeyEnc: new Uint8Array(sealed) },
      });
      result.rewrapped++;
    }
    const refreshKeys = await rewrapRefreshKeys(tx, oldKey, newKey);
    result.rewrapped += refreshKeys.rewrapped;
    result.alreadyNew += refreshKeys.alreadyNew;
    await recordAudit(tx, {
      ...by,
      at: new Date(now()),
      action: "signing_key.rewrap",
      targetType: "signing_key",
      outcome: "success",
      details: { rewrapped: result.rewrapped, already_new: result.alreadyNew },
    });
    return result;
  });
}

function opensWith(sealed: Uint8Array, key: Buffer, kid: string): boolean {
  try {
    decryptPrivateKey(sealed, key, kid).fill(0);
    return true;
  } catch {
    return false;
  }
}
