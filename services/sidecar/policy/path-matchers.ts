/**
 * Path tests of the route policy. They run on the canonical path (canonical-path.ts) and err on the
 * guarded side, because apps route more leniently than an exact comparison: Express matches
 * `/ADMIN` and `/admin/` to `/admin`, Tomcat and Spring cut `;jsessionid=…` before routing.
 *
 * - A guarded rule (`public: false`) judges the loose view of the path: case-folded, `;`-parameters
 *   cut from every segment, one trailing slash ignored. `/Admin;x=1/panel/` meets `prefix: /admin`.
 * - A public rule judges the exact canonical path: same letter case, the trailing slash as written,
 *   and never a path holding `;`, so a public rule cannot capture what an app routes elsewhere.
 */

/** One canonical request path and its loose view, computed on first use. */
export class RequestPath {
  #loose: string | undefined;

  /** `forwarded`: the path the app receives, when it differs from the judged `exact` one. */
  constructor(
    readonly exact: string,
    readonly forwarded: string = exact,
  ) {}

  /** Case-folded, `;`-parameters cut, repeated slashes merged, no trailing slash (but `/`). */
  get loose(): string {
    if (this.#loose === undefined) this.#loose = loosePath(this.exact);
    return this.#loose;
  }
}

/** The loose view of a canonical path (ASCII only, so only ASCII letters need folding). */
export function loosePath(path: string): string {
  let fold = false;
  let params = false;
  for (let i = 0; i < path.length; i++) {
    const c = path.charCodeAt(i);
    if (c >= 0x41 && c <= 0x5a) fold = true;
    else if (c === 0x3b) params = true;
  }
  let p = fold ? path.toLowerCase() : path;
  if (params) p = p.replace(/;[^/]*/g, "").replace(/\/{2,}/g, "/");
  return p.length > 1 && p.endsWith("/") ? p.slice(0, -1) : p;
}

export type PathTest = (path: RequestPath) => boolean;

/** `path:`: the path itself. */
export function exactPath(pattern: string, guarded: boolean): PathTest {
  if (!guarded) return (p) => p.exact === pattern;
  const loose = loosePath(pattern);
  return (p) => p.loose === loose;
}

/**
 * `prefix:`, segment-aware: `/api` matches `/api` and `/api/…` but not `/apiary`. Exactly written,
 * `/api/` matches `/api/…` only; guarded, it also matches `/api` (one trailing slash ignored).
 */
export function pathPrefix(pattern: string, guarded: boolean): PathTest {
  if (!guarded) {
    const below = pattern.endsWith("/") ? pattern : `${pattern}/`;
    return (p) => (p.exact === pattern || p.exact.startsWith(below)) && !p.exact.includes(";");
  }
  const loose = loosePath(pattern);
  if (loose === "/") return () => true;
  const below = `${loose}/`;
  return (p) => p.loose === loose || p.loose.startsWith(below);
}

const GLOBSTAR = "**";
const STAR = 0x2a;
const QUESTION = 0x3f;

/**
 * `glob:`, compiled once: `*` is any run of characters within a segment, `?` one such character,
 * `**` (a whole segment) any number of segments, so `/api/**` matches `/api`, `/api/` and
 * everything below. Throws on `**` inside a segment.
 *
 * Matching cannot backtrack exponentially: segments are matched with the greedy last-star
 * algorithm, and so is each segment against its pattern, so the work is bounded by
 * path length × pattern length (and the path by its length cap).
 */
export function pathGlob(pattern: string, guarded: boolean): PathTest {
  if (pattern.split("/").some((seg) => seg !== GLOBSTAR && seg.includes(GLOBSTAR))) {
    throw new Error('"**" must be a whole path segment');
  }
  if (!guarded) {
    const segments = globSegments(pattern);
    return (p) => !p.exact.includes(";") && matchSegments(segments, p.exact, false);
  }
  const segments = globSegments(loosePath(pattern));
  // The loose path has no trailing slash: when the pattern's last segment can match an empty one
  // (`*`, or a trailing slash), try the path with one too.
  const last = segments[segments.length - 1] ?? "";
  const tryTrailingSlash = last !== GLOBSTAR && /^\**$/.test(last);
  return (p) =>
    matchSegments(segments, p.loose, false) ||
    (tryTrailingSlash && p.loose !== "/" && matchSegments(segments, p.loose, true));
}

/** The pattern's segments after the leading slash, runs of `**` merged into one. */
function globSegments(pattern: string): string[] {
  const out: string[] = [];
  for (const seg of pattern.split("/").slice(1)) {
    if (seg !== GLOBSTAR || out[out.length - 1] !== GLOBSTAR) out.push(seg);
  }
  return out;
}

/**
 * Pattern segments against the segments of `path` (after its leading slash), read in place;
 * `trailingSlash` adds an empty last segment. `**` is a star over segments: on a mismatch only the
 * latest `**` takes one segment more.
 */
function matchSegments(pattern: readonly string[], path: string, trailingSlash: boolean): boolean {
  const last = trailingSlash ? path.length + 1 : path.length; // where the last segment may start
  let p = 0;
  let s = 1;
  let starP = -1;
  let starS = 0;
  while (s <= last) {
    if (p < pattern.length && pattern[p] === GLOBSTAR) {
      starP = p++;
      starS = s;
      continue;
    }
    const end = segmentEnd(path, s);
    if (p < pattern.length && matchSegment(pattern[p]!, path, s, end)) {
      p++;
      s = end + 1;
    } else if (starP !== -1) {
      p = starP + 1;
      starS = segmentEnd(path, starS) + 1;
      s = starS;
    } else return false;
  }
  while (p < pattern.length && pattern[p] === GLOBSTAR) p++;
  return p === pattern.length;
}

/** Where the segment starting at `start` ends (the virtual one past the end is empty). */
function segmentEnd(path: string, start: number): number {
  const slash = path.indexOf("/", start);
  if (slash !== -1) return slash;
  return Math.max(start, path.length);
}

/** One segment (`path[from..to)`) against `*`/`?` wildcards, greedy last-star: O(pattern × segment). */
function matchSegment(pattern: string, path: string, from: number, to: number): boolean {
  let p = 0;
  let s = from;
  let starP = -1;
  let starS = 0;
  while (s < to) {
    const c = p < pattern.length ? pattern.charCodeAt(p) : -1;
    if (c === STAR) {
      starP = p++;
      starS = s;
    } else if (c === QUESTION || (c !== -1 && c === path.charCodeAt(s))) {
      p++;
      s++;
    } else if (starP !== -1) {
      p = starP + 1;
      s = ++starS;
    } else return false;
  }
  while (p < pattern.length && pattern.charCodeAt(p) === STAR) p++;
  return p === pattern.length;
}

const GRPC_PATTERN = /^\/[A-Za-z_][A-Za-z0-9_.]*\/(?:\*|[A-Za-z_][A-Za-z0-9_]*)$/;

/**
 * `grpc:`: `/pkg.Service/Method` exactly, or every method of a service with `/pkg.Service/*`.
 * Guarded, the wildcard covers everything below `/pkg.Service` (in the loose view).
 */
export function grpcMethod(pattern: string, guarded: boolean): PathTest {
  if (!GRPC_PATTERN.test(pattern))
    throw new Error('must look like "/pkg.Service/Method" or "/pkg.Service/*"');
  const wildcard = pattern.endsWith("/*");
  if (!guarded) {
    if (!wildcard) return (p) => p.exact === pattern;
    const service = pattern.slice(0, -1);
    return (p) =>
      p.exact.length > service.length &&
      p.exact.startsWith(service) &&
      p.exact.indexOf("/", service.length) === -1 &&
      !p.exact.includes(";");
  }
  if (!wildcard) {
    const loose = pattern.toLowerCase();
    return (p) => p.loose === loose;
  }
  const service = pattern.slice(0, -2).toLowerCase();
  const below = `${service}/`;
  return (p) => p.loose === service || p.loose.startsWith(below);
}
