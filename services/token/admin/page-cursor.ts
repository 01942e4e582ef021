import { createHash } from "node:crypto";
import { GatehouseError } from "../../shared/errors/gatehouse-error.ts";

/**
 * Opaque page tokens: the position of the last row returned plus a fingerprint of the filters, so
 * a token replayed with other filters is refused instead of silently skipping or repeating rows.
 */
export const DEFAULT_PAGE_SIZE = 50;
export const MAX_PAGE_SIZE = 500;

function fingerprint(filters: unknown): string {
  return createHash("sha256").update(JSON.stringify(filters)).digest("base64url").slice(0, 12);
}

export function encodePageToken(position: readonly (string | number)[], filters: unknown): string {
  return Buffer.from(JSON.stringify([fingerprint(filters), ...position])).toString("base64url");
}

/** The position a page token holds, or invalid_request when it is malformed or from other filters. */
export function decodePageToken(token: string, filters: unknown, shape: readonly ("string" | "number")[]) {
  const bad = (why: string) =>
    new GatehouseError("invalid_request", `page_token ${why}`, { metadata: { field: "page_token" } });
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(token, "base64url").toString("utf8"));
  } catch {
    throw bad("is not valid");
  }
  if (!Array.isArray(parsed) || parsed.length !== shape.length + 1) throw bad("is not valid");
  const [mark, ...position] = parsed as unknown[];
  if (position.some((v, i) => typeof v !== shape[i])) throw bad("is not valid");
  if (mark !== fingerprint(filters)) throw bad("belongs to a listing with other filters");
  return position as (string | number)[];
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
