import { randomBytes, type ScryptOptions, scrypt, timingSafeEqual } from "node:crypto";

/**
 * Client secrets: generated with a `gths_` prefix (findable by secret scanners), stored only as scrypt
 * hashes whose parameters travel in the stored string, so they can be raised later without breaking
 * existing rows: `scrypt$N=16384,r=8,p=1$<salt b64url>$<hash b64url>`.
 */
const CLIENT_SECRET_PREFIX = "gths_";
export const DEFAULT_SCRYPT = { N: 16384, r: 8, p: 1 } as const;
const KEY_LENGTH = 32;

export function generateClientSecret(): string {
  return CLIENT_SECRET_PREFIX + randomBytes(32).toString("base64url");
}

function scryptAsync(
  secret: string,
  salt: Buffer,
  params: { N: number; r: number; p: number },
): Promise<Buffer> {
  const options: ScryptOptions = { N: params.N, r: params.r, p: params.p, maxmem: 256 * params.N * params.r };
  return new Promise((resolve, reject) =>
    scrypt(secret, salt, KEY_LENGTH, options, (err, key) => (err ? reject(err) : resolve(key))),
  );
}

export async function hashClientSecret(
  secret: string,
  params: { N: number; r: number; p: number } = DEFAULT_SCRYPT,
): Promise<string> {
  const salt = randomBytes(16);
  const hash = await scryptAsync(secret, salt, params);
  return `scrypt$N=${params.N},r=${params.r},p=${params.p}$${salt.toString("base64url")}$${hash.toString("base64url")}`;
}

const STORED = /^scrypt\$N=(\d+),r=(\d+),p=(\d+)\$([A-Za-z0-9_-]+)\$([A-Za-z0-9_-]+)$/;

/** Constant-time check of a presented secret against a stored hash; false for any malformed hash. */
export async function verifyClientSecret(secret: string, stored: string): Promise<boolean> {
  const m = STORED.exec(stored);
  if (!m) return false;
  const params = { N: Number(m[1]), r: Number(m[2]), p: Number(m[3]) };
  const expected = Buffer.from(m[5]!, "base64url");
  const actual = await scryptAsync(secret, Buffer.from(m[4]!, "base64url"), params);
  return expected.length === actual.length && timingSafeEqual(expected, actual);
}
