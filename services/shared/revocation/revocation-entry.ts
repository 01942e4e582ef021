import type { RevocationEvent } from "./revocation-events.ts";

/**
 * Wire form of a revocation event as a stream entry: one field, {@link ENTRY_FIELD}, holding the
 * whole event as JSON. One field keeps an entry one string to parse and lets new event kinds add
 * members without a format change; the event's own `id` (not the stream id) is what makes replays
 * idempotent.
 */
export const ENTRY_FIELD = "e";

/** Longest id-like string an event may carry (jti, sid, sub, client id, kid, event id). */
const MAX_TEXT = 1024;

/** The flat field list of a stream entry: `["e", "<event JSON>"]`. */
export function encodeRevocationEntry(event: RevocationEvent): string[] {
  return [ENTRY_FIELD, JSON.stringify(event)];
}

/**
 * The event in a stream entry's flat field list, or null when the entry is not one we understand:
 * no `e` field, not JSON, an unknown event type, or a known type with missing or ill-typed members.
 * Never throws, so a stray entry written by another tool is skipped (and counted by the caller).
 */
export function decodeRevocationEntry(fields: readonly string[]): RevocationEvent | null {
  let json: string | undefined;
  for (let i = 0; i + 1 < fields.length; i += 2) {
    if (fields[i] === ENTRY_FIELD) {
      json = fields[i + 1];
      break;
    }
  }
  if (json === undefined) return null;
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch {
    return null;
  }
  // The parsed object is ours alone, so a valid one is returned as it is (no copy on the bootstrap path).
  return isRevocationEvent(value) ? value : null;
}

const isText = (v: unknown): v is string => typeof v === "string" && v.length > 0 && v.length <= MAX_TEXT;
const isNumber = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v);

/**
 * Whether an untrusted value (parsed JSON) is a {@link RevocationEvent}: a known type with every member
 * it needs, well typed. Extra members are allowed and ignored.
 */
function isRevocationEvent(value: unknown): value is RevocationEvent {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return false;
  const v = value as Record<string, unknown>;
  if (!isText(v.id) || !isNumber(v.at) || !isNumber(v.until)) return false;
  switch (v.type) {
    case "token_revoked":
      return isText(v.jti);
    case "session_revoked":
      return isText(v.sid);
    case "session_version":
      return isText(v.sid) && Number.isSafeInteger(v.minVersion);
    case "subject_revoked":
      return isText(v.sub) && isNumber(v.notBefore);
    case "client_disabled":
      return isText(v.clientId) && isNumber(v.notBefore);
    case "key_revoked":
      return isText(v.kid);
    default:
      return false;
  }
}

/** Like {@link isRevocationEvent}, but returns a fresh event with exactly its type's members, or null. */
export function toRevocationEvent(value: unknown): RevocationEvent | null {
  if (!isRevocationEvent(value)) return null;
  const { id, at, until } = value;
  switch (value.type) {
    case "token_revoked":
      return { id, type: value.type, at, until, jti: value.jti };
    case "session_revoked":
      return { id, type: value.type, at, until, sid: value.sid };
    case "session_version":
      return { id, type: value.type, at, until, sid: value.sid, minVersion: value.minVersion };
    case "subject_revoked":
      return { id, type: value.type, at, until, sub: value.sub, notBefore: value.notBefore };
    case "client_disabled":
      return { id, type: value.type, at, until, clientId: value.clientId, notBefore: value.notBefore };
    case "key_revoked":
      return { id, type: value.type, at, until, kid: value.kid };
  }
}
