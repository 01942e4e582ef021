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
  #exactSegments: string[] | undefined;
  #looseSegments: string[] | undefined;

  constructor(readonly exact: string) {}

  /** Case-folded, `;`-parameters cut, repeated slashes merged, no trailing slash (but `/`). */
  get loose(): string {
    if (this.#loose === undefined) this.#loose = loosePath(this.exact);
    return this.#loose;
  }

  /** `split("/")` of the exact path: index 0 is the empty string before the leading slash. */
  get exactSegments(): string[] {
    if (this.#exactSegments === undefined) this.#exactSegments = this.exact.split("/");
    return this.#exactSegments;
  }

  get looseSegments(): string[] {
    if (this.#looseSegments === undefined) this.#looseSegments = this.loose.split("/");
    return this.#looseSegments;
  }
}

/** The loose view of a canonical path (ASCII only, so `toLowerCase` folds ASCII letters alone). */
export function loosePath(path: string): string {
  let p = path.toLowerCase();
  if (p.includes(";")) p = p.replace(/;[^/]*/g, "").replace(/\/{2,}/g, "/");
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
    return (p) => !p.exact.includes(";") && matchSegments(segments, p.exactSegments, p.exactSegments.length);
  }
  const segments = globSegments(loosePath(pattern));
  return (p) => {
    const path = p.looseSegments;
    // The loose path has no trailing slash: try it with one too.
    return (
      matchSegments(segments, path, path.length) ||
      (p.loose !== "/" && matchSegments(segments, path, path.length + 1))
    );
  };
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
 * Pattern segments against path segments 1..count-1 (`path[0]` is the empty string before the
 * leading slash; a `count` one past the end adds an empty last segment, i.e. a trailing slash).
 * `**` is a star over segments: on a mismatch only the latest `**` takes one segment more.
 */
function matchSegments(pattern: readonly string[], path: readonly string[], count: number): boolean {
  let p = 0;
  let s = 1;
  let starP = -1;
  let starS = 0;
  while (s < count) {
    if (p < pattern.length && pattern[p] === GLOBSTAR) {
      starP = p++;
      starS = s;
    } else if (p < pattern.length && matchSegment(pattern[p]!, path[s] ?? "")) {
      p++;
      s++;
    } else if (starP !== -1) {
      p = starP + 1;
      s = ++starS;
    } else return false;
  }
  while (p < pattern.length && pattern[p] === GLOBSTAR) p++;
  return p === pattern.length;
}

/** One segment against `*`/`?` wildcards, greedy last-star: O(pattern × segment) at worst. */
function matchSegment(pattern: string, segment: string): boolean {
  let p = 0;
  let s = 0;
  let starP = -1;
  let starS = 0;
  while (s < segment.length) {
    const c = p < pattern.length ? pattern.charCodeAt(p) : -1;
    if (c === STAR) {
      starP = p++;
      starS = s;
    } else if (c === QUESTION || (c !== -1 && c === segment.charCodeAt(s))) {
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
