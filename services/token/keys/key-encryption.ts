import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import { GatehouseError } from "../../shared/errors/gatehouse-error.ts";

/**
 * Private signing keys at rest: AES-256-GCM under the master key, with the key's `kid` as associated
 * data so a ciphertext cannot be moved to another key's row. Layout: version(1) | iv(12) | tag(16) | ct.
 */
const VERSION = 1;

export function encryptPrivateKey(pkcs8: Uint8Array, masterKey: Uint8Array, kid: string): Buffer {
  const iv = randomBytes(12);
  const cipher = createCipheriv("aes-256-gcm", masterKey, iv);
  cipher.setAAD(Buffer.from(kid, "utf8"));
  const ct = Buffer.concat([cipher.update(pkcs8), cipher.final()]);
  return Buffer.concat([Buffer.from([VERSION]), iv, cipher.getAuthTag(), ct]);
}

export function decryptPrivateKey(sealed: Uint8Array, masterKey: Uint8Array, kid: string): Buffer {
  const buf = Buffer.from(sealed);
  if (buf.length < 29 || buf[0] !== VERSION) {
    throw new GatehouseError("internal", `signing key ${kid} is not in a format this version can read`);
  }
  try {
    const decipher = createDecipheriv("aes-256-gcm", masterKey, buf.subarray(1, 13));
    decipher.setAAD(Buffer.from(kid, "utf8"));
    decipher.setAuthTag(buf.subarray(13, 29));
    return Buffer.concat([decipher.update(buf.subarray(29)), decipher.final()]);
  } catch (cause) {
    throw new GatehouseError(
      "failed_precondition",
      `cannot decrypt signing key ${kid}: GATEHOUSE_MASTER_KEY is not the key it was encrypted with (after changing it, run gatehouse keys rewrap)`,
      { cause },
    );
  }
}
