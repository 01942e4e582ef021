import { createHash } from "node:crypto";
import { GatehouseError } from "../../shared/errors/gatehouse-error.ts";

/**
 * Opaque page tokens: the position of the last row returned plus a fingerprint of the filters, so
 * a token replayed with other filters is refused instead of silently skipping or repeating rows.
 * Every listing decodes its tokens here, so a forged position is refused as invalid_request before
 * it can reach the database as an Invalid Date or an out-of-range id (which Postgres answers with
 * an error the caller would see as `internal`).
 */
const DEFAULT_PAGE_SIZE = 50;
const MAX_PAGE_SIZE = 500;

/** Longer tokens than any we issue are refused unparsed. */
const MAX_TOKEN_LENGTH = 1024;
/** The Date range (±8.64e15 ms), restricted to after the epoch: no row of ours is older. */
const MAX_MILLIS = 8.64e15;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const MAX_BIGINT = 2n ** 63n - 1n;
const MAX_TEXT = 256;

/** What one position field holds and so what the query built from it will accept. */
export type CursorPart = "millis" | "uuid" | "serial" | "text";
export type CursorValue<P extends CursorPart> = P extends "millis"
  ? number
  : P extends "serial"
    ? bigint
    : string;

const VALID: Record<CursorPart, (v: unknown) => boolean> = {
  millis: (v) => Number.isSafeInteger(v) && (v as number) >= 0 && (v as number) <= MAX_MILLIS,
  uuid: (v) => typeof v === "string" && UUID.test(v),
  serial: (v) => typeof v === "string" && /^[0-9]{1,19}$/.test(v) && BigInt(v) <= MAX_BIGINT,
  text: (v) => typeof v === "string" && v.length <= MAX_TEXT,
};

function fingerprint(filters: unknown): string {
  return createHash("sha256").update(JSON.stringify(filters)).digest("base64url").slice(0, 12);
}

/** `serial` positions are bigints, written as decimal strings (JSON has no bigint). */
export function encodePageToken(position: readonly (string | number | bigint)[], filters: unknown): string {
  const json = position.map((v) => (typeof v === "bigint" ? v.toString() : v));
  return Buffer.from(JSON.stringify([fingerprint(filters), ...json])).toString("base64url");
}

/** The position a page token holds, or invalid_request when it is malformed or from other filters. */
export function decodePageToken<const S extends readonly CursorPart[]>(
  token: string,
  filters: unknown,
  shape: S,
): { [I in keyof S]: CursorValue<S[I]> } {
  const bad = (why: string) =>
    new GatehouseError("invalid_request", `page_token ${why}`, { metadata: { field: "page_token" } });
  if (token.length > MAX_TOKEN_LENGTH) throw bad("is not valid");
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(token, "base64url").toString("utf8"));
  } catch {
    throw bad("is not valid");
  }
  if (!Array.isArray(parsed) || parsed.length !== shape.length + 1) throw bad("is not valid");
  const [mark, ...position] = parsed as unknown[];
  if (position.some((v, i) => !VALID[shape[i] as CursorPart](v))) throw bad("is not valid");
  if (mark !== fingerprint(filters)) throw bad("belongs to a listing with other filters");
  return position.map((v, i) => (shape[i] === "serial" ? BigInt(v as string) : v)) as {
    [I in keyof S]: CursorValue<S[I]>;
  };
}

/** page_size as the API documents it: 0 means the default, above the maximum means the maximum. */
export function pageSize(requested: number): number {
  if (requested < 0) {
    throw new GatehouseError("invalid_request", "page_size must not be negative", {
      metadata: { field: "page_size" },
    });
  }
  return requested === 0 ? DEFAULT_PAGE_SIZE : Math.min(requested, MAX_PAGE_SIZE);
}
