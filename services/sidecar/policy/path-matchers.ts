/**
 * Path rules match the normalized path: query and fragment cut off, percent-encoded unreserved
 * characters decoded (`%41` → `A`, `%2e` → `.`), other escapes upper-cased, repeated slashes merged,
 * `.` and `..` segments resolved (RFC 3986 §6.2.2). Otherwise `/public/../admin` or `/%61dmin` would
 * slip past a rule meant for `/admin`. A proxy must forward the same normalized path it matched, or
 * refuse requests whose path changes under normalization.
 */
export function normalizePath(raw: string): string {
  let path = raw;
  if (!path.startsWith("/")) {
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(path)) {
      try {
        return normalizePath(new URL(path).pathname);
      } catch {
        return "/";
      }
    }
    path = `/${path}`;
  }
  const end = path.search(/[?#]/);
  if (end !== -1) path = path.slice(0, end);
  if (path.includes("%")) path = path.replace(/%([0-9a-fA-F]{2})/g, decodeUnreserved);
  if (path.includes("//") || path.includes("/.")) path = removeDotSegments(path);
  return path;
}

function decodeUnreserved(_match: string, hex: string): string {
  const code = Number.parseInt(hex, 16);
  const c = String.fromCharCode(code);
  return /[A-Za-z0-9\-._~]/.test(c) ? c : `%${hex.toUpperCase()}`;
}

function removeDotSegments(path: string): string {
  const segments = path.split("/");
  const out: string[] = [];
  for (let i = 1; i < segments.length; i++) {
    const seg = segments[i]!;
    if (seg === "..") out.pop();
    else if (seg !== "." && seg !== "") out.push(seg);
  }
  const last = segments[segments.length - 1];
  const trailing = out.length > 0 && (last === "" || last === "." || last === "..");
  return `/${out.join("/")}${trailing ? "/" : ""}`;
}

export type PathTest = (normalizedPath: string) => boolean;

export function exactPath(path: string): PathTest {
  return (p) => p === path;
}

/**
 * Segment-aware prefix: `/api` matches `/api` and `/api/…` but not `/apiary`; `/api/` matches
 * `/api/…` only.
 */
export function pathPrefix(prefix: string): PathTest {
  if (prefix.endsWith("/")) return (p) => p.startsWith(prefix);
  const withSlash = `${prefix}/`;
  return (p) => p === prefix || p.startsWith(withSlash);
}

/**
 * Compiles a path glob once: `*` is any run of characters within a segment, `?` one such character,
 * `**` (a whole segment) any number of segments — so `/api/**` matches `/api`, `/api/` and everything
 * below. Throws on `**` inside a segment.
 */
export function pathGlob(pattern: string): PathTest {
  const segments = pattern.split("/").slice(1);
  let source = "^";
  segments.forEach((seg, i) => {
    if (seg === "**") {
      if (segments[i - 1] === "**") return;
      source += i === segments.length - 1 ? "(?:/.*)?" : "(?:/[^/]+)*";
      return;
    }
    if (seg.includes("**")) throw new Error('"**" must be a whole path segment');
    source += `/${seg
      .replace(/[.+^${}()|[\]\\]/g, "\\$&")
      .replace(/\*+/g, "[^/]*")
      .replace(/\?/g, "[^/]")}`;
  });
  const regex = new RegExp(`${source}$`);
  return (p) => regex.test(p);
}

const GRPC_PATTERN = /^\/[A-Za-z_][A-Za-z0-9_.]*\/(?:\*|[A-Za-z_][A-Za-z0-9_]*)$/;

/** `/pkg.Service/Method` exactly, or every method of a service with `/pkg.Service/*`. */
export function grpcMethod(pattern: string): PathTest {
  if (!GRPC_PATTERN.test(pattern))
    throw new Error('must look like "/pkg.Service/Method" or "/pkg.Service/*"');
  if (pattern.endsWith("/*")) {
    const service = pattern.slice(0, -1);
    return (m) => m.startsWith(service) && m.indexOf("/", service.length) === -1;
  }
  return (m) => m === pattern;
}
