import { GatehouseError } from "../../shared/errors/gatehouse-error.ts";

/**
 * Limits on request fields, checked before anything touches storage. Generous for real callers,
 * tight enough that a hostile caller cannot make us store or sign megabytes.
 */
export const LIMITS = {
  subject: 256,
  audienceItems: 16,
  audience: 256,
  scopeItems: 64,
  scope: 128,
  tenant: 128,
  deviceField: 512,
  reason: 256,
  token: 4096,
  pageSize: 500,
} as const;

function invalid(field: string, problem: string): GatehouseError {
  return new GatehouseError("invalid_request", `${field} ${problem}`, { metadata: { field } });
}

/**
 * protobuf decoders replace invalid UTF-8 with U+FFFD rather than failing; a string that carries one
 * was not valid text on the wire. JSON can spell a lone surrogate (`"\ud800"`), which is no text
 * either: Postgres would store U+FFFD while the token carried the surrogate. Control characters have
 * no business in identifiers.
 */
const UNPRINTABLE =
  // biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
  /[\u0000-\u001f\u007f\ufffd]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

export function checkText(
  field: string,
  value: string,
  max: number,
  opts: { required?: boolean } = {},
): string {
  if (value.length === 0) {
    if (opts.required) throw invalid(field, "is required");
    return value;
  }
  if (value.length > max) throw invalid(field, `is longer than ${max} characters`);
  if (UNPRINTABLE.test(value)) throw invalid(field, "contains invalid UTF-8 or control characters");
  return value;
}

export function checkList(
  field: string,
  values: readonly string[],
  maxItems: number,
  maxLength: number,
): string[] {
  if (values.length > maxItems) throw invalid(field, `has more than ${maxItems} entries`);
  const out: string[] = [];
  for (const v of values) {
    checkText(field, v, maxLength, { required: true });
    if (/\s/.test(v)) throw invalid(field, "entries must not contain whitespace");
    if (!out.includes(v)) out.push(v);
  }
  return out;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function checkUuid(field: string, value: string): string {
  if (!UUID.test(value)) throw invalid(field, "is not a session id (UUID)");
  return value.toLowerCase();
}

export function checkToken(field: string, value: string): string {
  if (value.length === 0) throw invalid(field, "is required");
  if (value.length > LIMITS.token) throw invalid(field, "is longer than 4 KiB");
  return value;
}
