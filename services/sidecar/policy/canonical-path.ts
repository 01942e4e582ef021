/**
 * The one canonical form of a request path, computed once per request: the policy judges it and the
 * app receives it (or, where the sidecar cannot rewrite the path, the request is refused when its
 * path is not already canonical). Anything two servers could read two ways is refused rather than
 * guessed at: what one of them calls `/public/x` another may route as `/admin`.
 *
 * Steps (RFC 3986 §6.2.2 plus refusals): cut query and fragment; refuse a path over the length cap
 * (414); refuse raw bytes outside printable ASCII and any raw `\`; decode escapes of unreserved
 * characters (`%41` → `A`, `%2e` → `.`), upper-case the others, refuse escapes of control characters
 * and escapes that are not valid UTF-8, refuse `%2F`/`%5C` unless allowed; merge repeated slashes;
 * remove `.` and `..` segments, refusing a `..` that climbs above the root and any segment that is
 * `.` or `..` once its `;`-parameters are cut (Tomcat and Spring resolve `/public/..;/admin`).
 */

/** The default length cap (`GATEHOUSE_MAX_PATH_LENGTH`): what common servers accept in a request line. */
export const DEFAULT_MAX_PATH_LENGTH = 4096;

export interface CanonicalPathOptions {
  /** Longest raw path (bytes, query excluded) accepted. */
  readonly maxLength: number;
  /**
   * Keep `%2F`/`%5C` (encoded `/` and `\`) in the forwarded path instead of refusing them; the policy
   * then judges the path with them read as `/`, so `/admin%2Fx` is judged as `/admin/x`.
   */
  readonly allowEncodedSlashes: boolean;
}

/** Why a path was refused: `path_too_long` (414), `invalid_path` and `ambiguous_path` (400). */
type PathRefusalCode = "path_too_long" | "invalid_path" | "ambiguous_path";

export type CanonicalPath =
  | {
      readonly ok: true;
      /** What the app receives (before the original query). */
      readonly path: string;
      /** What the policy judges: `path`, with allowed encoded slashes read as `/`. */
      readonly judgedPath: string;
    }
  | { readonly ok: false; readonly code: PathRefusalCode; readonly message: string };

const HEX = /^[0-9A-Fa-f]{2}$/;
const ABSOLUTE_FORM = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/?#\\]*/;
const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

function refuse(code: PathRefusalCode, message: string): CanonicalPath {
  return { ok: false, code, message };
}

/**
 * The canonical path of a request target (origin-form `/p?q`, or absolute-form `http://h/p?q` whose
 * authority is dropped). A clean path (the common case) is checked in one scan and returned as it
 * came, without copying.
 */
export function canonicalPath(target: string, options: CanonicalPathOptions): CanonicalPath {
  let start = 0;
  if (target.charCodeAt(0) !== 0x2f /* / */) {
    const absolute = ABSOLUTE_FORM.exec(target);
    if (absolute === null) return refuse("invalid_path", "the request target is not a path");
    start = absolute[0].length;
  }
  let end = target.length;
  let clean = true;
  for (let i = start; i < end; i++) {
    const c = target.charCodeAt(i);
    if (c === 0x3f /* ? */ || c === 0x23 /* # */) {
      end = i;
      break;
    }
    if (i - start >= options.maxLength) break; // refused below, without scanning the rest
    if (c <= 0x20 || c >= 0x7f)
      return refuse("invalid_path", "the path holds a control, space or non-ASCII byte");
    if (c === 0x5c /* \ */) return refuse("ambiguous_path", "the path holds a backslash");
    if (c === 0x25 /* % */ || c === 0x3b /* ; */) clean = false;
    else if (c === 0x2f /* / */) {
      const next = target.charCodeAt(i + 1);
      if (next === 0x2f || next === 0x2e /* . */) clean = false;
    }
  }
  if (end - start > options.maxLength) {
    return refuse("path_too_long", `the path is longer than ${options.maxLength} bytes`);
  }
  let raw = start === 0 && end === target.length ? target : target.slice(start, end);
  if (raw === "") raw = "/"; // `http://host` or `http://host?q`
  if (clean) return { ok: true, path: raw, judgedPath: raw };
  return canonicalize(raw, options.allowEncodedSlashes);
}

function canonicalize(raw: string, allowEncodedSlashes: boolean): CanonicalPath {
  let decoded = raw;
  let encodedSlash = false;
  if (raw.includes("%")) {
    const escapes = decodeEscapes(raw, allowEncodedSlashes);
    if (typeof escapes !== "string") return escapes;
    decoded = escapes;
    encodedSlash = allowEncodedSlashes && /%(?:2F|5C)/.test(decoded);
  }
  const path = removeDotSegments(decoded);
  if (typeof path !== "string") return path;
  if (!encodedSlash) return { ok: true, path, judgedPath: path };
  // The app may decode `%2F` to `/` before routing: judge that reading, and refuse it when it makes
  // dot segments appear that the forwarded path does not resolve.
  const judged = removeDotSegments(path.replace(/%2F|%5C/g, "/"), true);
  if (typeof judged !== "string") return judged;
  return { ok: true, path, judgedPath: judged };
}

/** Decodes unreserved escapes, upper-cases the rest; refuses control, malformed and non-UTF-8 ones. */
function decodeEscapes(raw: string, allowEncodedSlashes: boolean): string | CanonicalPath {
  let out = "";
  let from = 0;
  let i = raw.indexOf("%");
  while (i !== -1) {
    const hex = raw.slice(i + 1, i + 3);
    if (!HEX.test(hex)) return refuse("invalid_path", "the path holds a malformed percent-escape");
    const byte = Number.parseInt(hex, 16);
    out += raw.slice(from, i);
    from = i + 3;
    if (byte < 0x20 || byte === 0x7f) {
      return refuse("invalid_path", "the path holds an escaped control character");
    }
    if (byte >= 0x80) {
      // A run of escaped bytes must spell valid UTF-8 (no stray continuation, overlong or surrogate).
      const bytes = [byte];
      while (raw.charCodeAt(from) === 0x25 && HEX.test(raw.slice(from + 1, from + 3))) {
        const b = Number.parseInt(raw.slice(from + 1, from + 3), 16);
        if (b < 0x80) break;
        bytes.push(b);
        from += 3;
      }
      try {
        strictUtf8.decode(Uint8Array.from(bytes));
      } catch {
        return refuse("invalid_path", "the path holds percent-escapes that are not valid UTF-8");
      }
      for (const b of bytes) out += `%${b.toString(16).toUpperCase()}`;
    } else if (byte === 0x2f || byte === 0x5c) {
      if (!allowEncodedSlashes) return refuse("ambiguous_path", "the path holds an encoded / or \\");
      out += `%${hex.toUpperCase()}`;
    } else if (isUnreserved(byte)) {
      out += String.fromCharCode(byte);
    } else {
      out += `%${hex.toUpperCase()}`;
    }
    i = raw.indexOf("%", from);
  }
  return out + raw.slice(from);
}

function isUnreserved(c: number): boolean {
  return (
    (c >= 0x41 && c <= 0x5a) || // A-Z
    (c >= 0x61 && c <= 0x7a) || // a-z
    (c >= 0x30 && c <= 0x39) || // 0-9
    c === 0x2d || // -
    c === 0x2e || // .
    c === 0x5f || // _
    c === 0x7e // ~
  );
}

/**
 * Merges repeated slashes and resolves `.` and `..` (a trailing one leaves a trailing slash, as in
 * RFC 3986 §5.2.4). Refuses `..` above the root and `.`/`..` carrying `;`-parameters; with
 * `refuseDots` (the judged reading of encoded slashes) any dot segment at all.
 */
function removeDotSegments(path: string, refuseDots = false): string | CanonicalPath {
  const segments = path.split("/");
  const out: string[] = [];
  for (let i = 1; i < segments.length; i++) {
    const seg = segments[i]!;
    const semicolon = seg.indexOf(";");
    const name = semicolon === -1 ? seg : seg.slice(0, semicolon);
    if (name === "." || name === "..") {
      if (semicolon !== -1) {
        return refuse("ambiguous_path", "the path holds a dot segment with ;-parameters");
      }
      if (refuseDots) {
        return refuse("ambiguous_path", "the path holds a dot segment once encoded slashes are read");
      }
      if (seg === ".." && out.pop() === undefined) {
        return refuse("ambiguous_path", "the path climbs above the root");
      }
    } else if (seg !== "") out.push(seg);
  }
  const last = segments[segments.length - 1];
  const trailing = out.length > 0 && (last === "" || last === "." || last === "..");
  return `/${out.join("/")}${trailing ? "/" : ""}`;
}

/** The path of a request target as it came: origin-form or absolute-form, query and fragment cut. */
export function rawPathOf(target: string): string {
  const start = target.startsWith("/") ? 0 : (ABSOLUTE_FORM.exec(target)?.[0].length ?? 0);
  const end = target.slice(start).search(/[?#]/);
  const path = end === -1 ? target.slice(start) : target.slice(start, start + end);
  return path === "" ? "/" : path;
}

/**
 * The same path as the canonical one, but for the letter case of percent-escapes (`%2f` and `%2F`
 * mean the same): what ext_authz and forward-auth require, as they cannot rewrite the app's path.
 */
export function isCanonical(rawPath: string, canonical: string): boolean {
  if (rawPath === canonical) return true;
  return rawPath.includes("%") && rawPath.replace(/%[0-9a-f]{2}/gi, (e) => e.toUpperCase()) === canonical;
}
