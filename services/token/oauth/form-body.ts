import type http from "node:http";
import { GatehouseError } from "../../shared/errors/gatehouse-error.ts";

/** An OAuth request's parameters: each name once, except the ones a spec lets repeat. */
export interface FormParams {
  /** The single value of `name`, or undefined when absent. An empty value counts as absent (RFC 6749 §3.1). */
  get(name: string): string | undefined;
  /** Every value of a parameter allowed to repeat (`resource`, `audience`). */
  all(name: string): string[];
  has(name: string): boolean;
}

/**
 * Largest form body the OAuth endpoints read. A token request carries a refresh token, a few scopes
 * and audiences; an introspection or revocation request one token (LIMITS.token is 4 KiB).
 */
const FORM_MAX_BYTES = 16 * 1024;

/** RFC 8707 and RFC 8693 let `resource` and `audience` appear more than once; nothing else may (RFC 6749 §3.2). */
const REPEATABLE = new Set(["resource", "audience"]);

const invalid = (message: string, field?: string) =>
  new GatehouseError("invalid_request", message, field ? { metadata: { field } } : {});

/**
 * Reads an `application/x-www-form-urlencoded` body (RFC 6749 §3.2, RFC 7009 §2.1, RFC 7662 §2.1),
 * refusing other content types, compressed or oversized bodies, invalid UTF-8 and repeated
 * parameters with `invalid_request`. The body is never logged: it holds secrets and tokens.
 */
export async function readFormBody(
  req: http.IncomingMessage,
  maxBytes = FORM_MAX_BYTES,
): Promise<FormParams> {
  const type = (req.headers["content-type"] ?? "").split(";")[0]!.trim().toLowerCase();
  if (type !== "application/x-www-form-urlencoded") {
    throw invalid("content-type must be application/x-www-form-urlencoded");
  }
  const encoding = req.headers["content-encoding"];
  if (encoding !== undefined && encoding.toLowerCase() !== "identity") {
    throw invalid("content-encoding is not supported on this endpoint");
  }
  // Too large: refused unread; the answer closes the connection (oauth-endpoint.ts) rather than drain it.
  const declared = Number(req.headers["content-length"] ?? 0);
  if (declared > maxBytes) throw invalid(`request body is larger than ${maxBytes} bytes`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > maxBytes) throw invalid(`request body is larger than ${maxBytes} bytes`);
    chunks.push(chunk);
  }
  return parseForm(Buffer.concat(chunks));
}

const fatalUtf8 = new TextDecoder("utf-8", { fatal: true });

/** Parses a form body; exported for unit tests of the parsing rules. */
export function parseForm(body: Uint8Array): FormParams {
  let text: string;
  try {
    text = fatalUtf8.decode(body);
  } catch {
    throw invalid("request body is not valid UTF-8");
  }
  const values = new Map<string, string[]>();
  for (const [name, value] of new URLSearchParams(text)) {
    // A percent-escape of invalid UTF-8 decodes to U+FFFD: that was no text either.
    if (name.includes("\ufffd") || value.includes("\ufffd")) throw invalid("parameters must be valid UTF-8");
    const seen = values.get(name);
    if (seen === undefined) values.set(name, [value]);
    else if (REPEATABLE.has(name)) seen.push(value);
    else throw invalid(`parameter ${name} is repeated`, name);
  }
  return {
    get: (name) => {
      const value = values.get(name)?.[0];
      return value === "" ? undefined : value;
    },
    all: (name) => (values.get(name) ?? []).filter((v) => v !== ""),
    has: (name) => values.has(name) && values.get(name)!.some((v) => v !== ""),
  };
}
