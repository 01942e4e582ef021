import { GatehouseError } from "../../shared/errors/gatehouse-error.ts";
import type { VerifyAlgorithm } from "../jwks/key-algorithm.ts";
import { decodeSegment } from "./token-parts.ts";

/** Header members that point at keys inside or outside the token. Keys come only from our JWKS. */
const KEY_SOURCE_MEMBERS = ["jku", "jwk", "x5u", "x5c"] as const;

/** Longest `kid` looked up; ours are 43-character thumbprints. */
const MAX_KID_LENGTH = 256;

export interface CheckedHeader {
  readonly alg: VerifyAlgorithm;
  readonly kid: string;
}

/**
 * The JOSE header rules, in order: `alg` allowed (`none` and HS* never are) → `unsupported_algorithm`;
 * `crit` present (we implement no extension) or a key-source member (`jku`, `jwk`, `x5u`, `x5c`) →
 * `malformed_token`, because a token that brings or points at its own key is never one we minted;
 * `typ` is `at+jwt` or `application/at+jwt` (RFC 9068, media types compare case-insensitively) →
 * `wrong_token_type`; `kid` a non-empty string → `unknown_key`.
 */
export function checkHeader(header: Record<string, unknown>, allowed: ReadonlySet<string>): CheckedHeader {
  const alg = header.alg;
  if (typeof alg !== "string" || !allowed.has(alg)) {
    throw new GatehouseError("unsupported_algorithm", `algorithm ${describe(alg)} is not accepted`);
  }
  if (header.crit !== undefined) {
    throw new GatehouseError("malformed_token", "header has crit: no extension is supported");
  }
  for (const member of KEY_SOURCE_MEMBERS) {
    if (header[member] !== undefined) {
      throw new GatehouseError("malformed_token", `header member ${member} is not accepted`);
    }
  }
  const typ = header.typ;
  if (typeof typ !== "string" || !isAccessTokenType(typ)) {
    throw new GatehouseError("wrong_token_type", `token type ${describe(typ)} is not at+jwt`);
  }
  const kid = header.kid;
  if (typeof kid !== "string" || kid.length === 0 || kid.length > MAX_KID_LENGTH) {
    throw new GatehouseError("unknown_key", "token has no usable kid");
  }
  return Object.freeze({ alg: alg as VerifyAlgorithm, kid });
}

/** Distinct good headers remembered; a signing key has one, so a handful are ever in use. */
const HEADER_MEMO_SIZE = 64;

/**
 * Decodes and checks encoded headers, remembering the ones that passed: the same few header segments
 * start every token, so this spares a decode, a parse and the checks per request. Headers that fail
 * are never remembered, and a flood of distinct ones only makes the memo start over.
 */
export function createHeaderReader(allowed: ReadonlySet<string>): (encodedHeader: string) => CheckedHeader {
  const memo = new Map<string, CheckedHeader>();
  return (encodedHeader) => {
    let checked = memo.get(encodedHeader);
    if (checked === undefined) {
      checked = checkHeader(decodeSegment(encodedHeader, "header"), allowed);
      if (memo.size >= HEADER_MEMO_SIZE) memo.clear();
      memo.set(encodedHeader, checked);
    }
    return checked;
  };
}

function isAccessTokenType(typ: string): boolean {
  if (typ === "at+jwt") return true;
  const lower = typ.toLowerCase();
  return lower === "at+jwt" || lower === "application/at+jwt";
}

/** A short, safe rendering of an attacker-controlled header value for the public message. */
function describe(value: unknown): string {
  if (value === undefined) return "(none)";
  if (typeof value !== "string") return `(${typeof value})`;
  return JSON.stringify(value.length > 32 ? `${value.slice(0, 32)}…` : value);
}
