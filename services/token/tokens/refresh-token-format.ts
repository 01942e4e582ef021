import { createHmac, hash, randomFillSync, timingSafeEqual } from "node:crypto";

/**
 * The refresh token's wire format and nothing else. Every token is `gthr_` + base64url (unpadded);
 * the prefix lets secret scanners find leaked tokens; the store keeps only SHA-256 hashes.
 *
 * - v2 (minted now): base64url of
 *   `0x02 | session id (16 bytes) | generation (uint32 BE) | random (32 bytes) | kid length (1) | kid | MAC (32)`,
 *   the MAC being HMAC-SHA256 under the refresh MAC key named by `kid` over everything before it. The
 *   session id and generation let the store keep one row per session (the live token's hash, its
 *   generation and the previous one's hash); the MAC lets a made-up token be refused before any
 *   database access, so naming a real session gets a forger nothing.
 * - v1 (minted before v2): base64url of 32 random bytes, a row per token in `refresh_tokens`. Still
 *   accepted until the session's next rotation, which moves it to v2.
 */
export const REFRESH_TOKEN_PREFIX = "gthr_";
const V1_BODY_CHARS = 43; // base64url of 32 bytes, unpadded
const V1_SHAPE = /^gthr_[A-Za-z0-9_-]{43}$/;
const BASE64URL = /^[A-Za-z0-9_-]*$/;
const V2 = 0x02;
const SESSION_ID_BYTES = 16;
const RANDOM_BYTES = 32;
const MAC_BYTES = 32;
const MAX_KID_BYTES = 64;
const KID = /^[A-Za-z0-9_-]+$/;
/** Offsets inside a v2 body. */
const AT = (() => {
  const generation = 1 + SESSION_ID_BYTES;
  const random = generation + 4;
  const kidLength = random + RANDOM_BYTES;
  return { sessionId: 1, generation, random, kidLength, kid: kidLength + 1 } as const;
})();
/** Generations are Postgres `integer`s; the last one has no successor. */
const MAX_GENERATION = 0x7fffffff - 1;

export interface RefreshMacKey {
  kid: string;
  key: Uint8Array;
}

export type ParsedRefreshToken =
  | { version: 1 }
  | {
      version: 2;
      sessionId: string;
      generation: number;
      /** Key id of the MAC key the token claims to be signed with. */
      kid: string;
      /** The bytes the MAC covers, and the MAC. */
      signed: Buffer;
      mac: Buffer;
    };

/**
 * What a string is as a refresh token: a v1 token, a v2 token (MAC not checked yet), or why neither.
 * Never throws: this runs on every hostile input before anything else.
 */
export function parseRefreshToken(token: string): ParsedRefreshToken | { problem: string } {
  if (token.length === 0) return { problem: "refresh_token is empty" };
  if (token.length > 4096) return { problem: "refresh_token is longer than 4 KiB" };
  if (!token.startsWith(REFRESH_TOKEN_PREFIX))
    return { problem: `refresh_token must start with ${REFRESH_TOKEN_PREFIX}` };
  const text = token.slice(REFRESH_TOKEN_PREFIX.length);
  if (text.length === V1_BODY_CHARS && V1_SHAPE.test(token)) return { version: 1 };
  if (!BASE64URL.test(text)) {
    const problem = text.length === V1_BODY_CHARS ? "is not base64url" : "has the wrong length";
    return { problem: `refresh_token ${problem}` };
  }
  const body = Buffer.from(text, "base64url");
  // Canonical encoding only: two strings for one body would verify alike and hash apart.
  if (body.length < AT.kid + 1 + MAC_BYTES || body[0] !== V2 || body.toString("base64url") !== text)
    return { problem: "refresh_token has the wrong length" };
  const kidLength = body[AT.kidLength]!;
  const macAt = AT.kid + kidLength;
  if (kidLength === 0 || kidLength > MAX_KID_BYTES || body.length !== macAt + MAC_BYTES)
    return { problem: "refresh_token has the wrong length" };
  const kid = body.subarray(AT.kid, macAt).toString("latin1");
  if (!KID.test(kid)) return { problem: "refresh_token has the wrong length" };
  const generation = body.readUInt32BE(AT.generation);
  if (generation < 1 || generation > MAX_GENERATION)
    return { problem: "refresh_token has an impossible generation" };
  return {
    version: 2,
    sessionId: uuidText(body.subarray(AT.sessionId, AT.generation)),
    generation,
    kid,
    signed: body.subarray(0, macAt),
    mac: body.subarray(macAt),
  };
}

/** Why a string cannot be a refresh token, or null when its shape is right. */
export function refreshTokenShapeProblem(token: string): string | null {
  const parsed = parseRefreshToken(token);
  return "problem" in parsed ? parsed.problem : null;
}

export function isRefreshTokenShaped(token: string): boolean {
  return !("problem" in parseRefreshToken(token));
}

/** True when a v2 token's MAC is the one `key` gives (constant time). */
export function refreshTokenMacValid(
  token: Extract<ParsedRefreshToken, { version: 2 }>,
  key: Uint8Array,
): boolean {
  return timingSafeEqual(Buffer.from(mac(token.signed, key), "binary"), token.mac);
}

/** A v2 token for a session's first generation: 256 bits of fresh randomness. */
export function generateRefreshToken(sessionId: string, macKey: RefreshMacKey): string {
  if (randomAt === randomPool.length) {
    randomFillSync(randomPool);
    randomAt = 0;
  }
  // mint copies the bytes out at once; each slice of the pool is handed out only once.
  const random = randomPool.toString("binary", randomAt, randomAt + RANDOM_BYTES);
  randomAt += RANDOM_BYTES;
  return mint(sessionId, 1, random, macKey);
}

/**
 * Random parts come from a pool refilled 4 KiB at a time, as node:crypto's randomUUID does: one call
 * into the CSPRNG per 128 tokens. Per token, that call cost Issue ~10 µs of the event loop.
 */
const randomPool = Buffer.alloc(RANDOM_BYTES * 128);
let randomAt = randomPool.length;

/** The only form in which a refresh token is stored or looked up (a string first: see `mac`). */
export function hashRefreshToken(token: string): Buffer {
  return Buffer.from(hash("sha256", token, "binary"), "binary");
}

/**
 * The successor of a refresh token, derived rather than random so that a repeated refresh of the
 * same token inside the grace window can return the same successor without storing its plaintext:
 * a v2 token of the next generation whose random part is HMAC-SHA256 of the presented token under
 * the successor key. Unpredictable without that key, so a stolen hash does not reveal the successor.
 * `generation` is the presented token's (0 for a v1 token: its successor opens generation 1).
 */
export function deriveNextRefreshToken(
  token: string,
  family: { sessionId: string; generation: number },
  successorKey: Uint8Array,
  macKey: RefreshMacKey,
): string {
  if (family.generation >= MAX_GENERATION) throw new RangeError("refresh token generation overflow");
  const random = createHmac("sha256", successorKey).update(token).digest("binary");
  return mint(family.sessionId, family.generation + 1, random, macKey);
}

/**
 * The successor a v1-era rotation derived (a v1 token, kept in `refresh_tokens`): a grace-window
 * replay of such a rotation, made before the upgrade, must hand out the same one.
 */
export function deriveSuccessor(token: string, successorKey: Uint8Array): string {
  return (
    REFRESH_TOKEN_PREFIX + createHmac("sha256", successorKey).update(token).digest().toString("base64url")
  );
}

/** `random`: 32 bytes as a "binary" (latin1) string, as the digests below come out (see `mac`). */
function mint(sessionId: string, generation: number, random: string, macKey: RefreshMacKey): string {
  const kidLength = Buffer.byteLength(macKey.kid, "latin1");
  if (!KID.test(macKey.kid) || kidLength > MAX_KID_BYTES) throw new TypeError("bad refresh MAC key id");
  // One buffer for the body and its MAC: this runs on every Issue and Refresh.
  const macAt = AT.kid + kidLength;
  const body = Buffer.allocUnsafe(macAt + MAC_BYTES);
  body[0] = V2;
  writeUuid(sessionId, body, AT.sessionId);
  body.writeUInt32BE(generation, AT.generation);
  body.write(random, AT.random, "binary");
  body[AT.kidLength] = kidLength;
  body.write(macKey.kid, AT.kid, "latin1");
  body.write(mac(body.subarray(0, macAt), macKey.key), macAt, "binary");
  return REFRESH_TOKEN_PREFIX + body.toString("base64url");
}

/**
 * HMAC-SHA256 as a "binary" (latin1) string, one character per byte. Node 20 hands a digest out
 * as a string for ~1 µs less than as a Buffer (measured here: 1.8 against 2.7 µs an HMAC, 0.55
 * against 1.9 µs a SHA-256 copied into a Buffer after), because each Buffer it makes in C++ is an
 * off-heap allocation V8 must account for; Issue and Refresh compute up to five of them.
 */
function mac(signed: Buffer, key: Uint8Array): string {
  return createHmac("sha256", key).update(signed).digest("binary");
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function writeUuid(id: string, into: Buffer, at: number): void {
  if (!UUID.test(id)) throw new TypeError("session id is not a UUID");
  // The five groups' hex, at their byte offsets: 4, 2, 2, 2 and 6 bytes.
  into.write(id.slice(0, 8), at, "hex");
  into.write(id.slice(9, 13), at + 4, "hex");
  into.write(id.slice(14, 18), at + 6, "hex");
  into.write(id.slice(19, 23), at + 8, "hex");
  into.write(id.slice(24), at + 10, "hex");
}

function uuidText(b: Buffer): string {
  const h = b.toString("hex");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}
