import { isUtf8 } from "node:buffer";
import { GatehouseError } from "../../shared/errors/gatehouse-error.ts";
import { hasDuplicateKeys } from "./json-duplicates.ts";

/** Longer tokens are refused before any decoding: ours are well under 2 KiB. */
export const MAX_TOKEN_LENGTH = 8192;

const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

export interface TokenParts {
  /** The header segment as sent; decoded by {@link decodeSegment} (or found in a cache of headers). */
  readonly encodedHeader: string;
  readonly payload: Record<string, unknown>;
  /** `header.payload`, ASCII: what the signature covers. */
  readonly signingInput: string;
  readonly signature: Buffer;
}

/**
 * Splits a compact JWS strictly: three non-empty base64url segments and nothing else, the payload a UTF-8
 * JSON object without repeated member names, the signature in canonical base64url (so one signature
 * has one spelling). The header is left encoded: few distinct headers exist, so the verifier decodes
 * each once. Every failure is `malformed_token`.
 */
export function splitToken(token: string): TokenParts {
  if (token.length > MAX_TOKEN_LENGTH) throw malformed(`token is longer than ${MAX_TOKEN_LENGTH} characters`);
  if (!COMPACT_JWS.test(token)) {
    throw malformed("token is not three base64url segments separated by dots");
  }
  const firstDot = token.indexOf(".");
  const lastDot = token.lastIndexOf(".");
  const payload = decodeSegment(token.slice(firstDot + 1, lastDot), "payload");
  const encodedSignature = token.slice(lastDot + 1);
  const signature = Buffer.from(encodedSignature, "base64url");
  if (signature.toString("base64url") !== encodedSignature)
    throw malformed("signature is not canonical base64url");
  return {
    encodedHeader: token.slice(0, firstDot),
    payload,
    signingInput: token.slice(0, lastDot),
    signature,
  };
}

/** One base64url segment (already known to use only base64url characters) as a JSON object. */
export function decodeSegment(segment: string, part: "header" | "payload"): Record<string, unknown> {
  // A length of 1 mod 4 cannot come out of base64url encoding: Buffer would drop the odd character.
  if (segment.length % 4 === 1) throw malformed(`${part} is not valid base64url`);
  const bytes = Buffer.from(segment, "base64url");
  // Decoding would turn a stray byte into U+FFFD, a value other parsers read differently (jose
  // refuses such a token): one signed text must have one reading.
  if (!isUtf8(bytes)) throw malformed(`${part} is not UTF-8`);
  const text = bytes.toString("utf8");
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (cause) {
    throw malformed(`${part} is not JSON`, cause);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw malformed(`${part} is not a JSON object`);
  }
  if (hasDuplicateKeys(text, value)) throw malformed(`${part} repeats a member name`);
  return value as Record<string, unknown>;
}

function malformed(message: string, cause?: unknown): GatehouseError {
  return new GatehouseError("malformed_token", message, cause === undefined ? {} : { cause });
}
