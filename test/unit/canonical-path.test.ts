import { describe, expect, it } from "vitest";
import {
  type CanonicalPathOptions,
  canonicalPath,
  isCanonical,
  rawPathOf,
} from "../../services/sidecar/policy/index.ts";

const STRICT: CanonicalPathOptions = { maxLength: 4096, allowEncodedSlashes: false };
const LENIENT: CanonicalPathOptions = { maxLength: 4096, allowEncodedSlashes: true };

describe("canonical path: normalisation", () => {
  it.each([
    ["/a/b", "/a/b"],
    ["/", "/"],
    ["/a/b?c=/../d#f", "/a/b"],
    ["/a#frag", "/a"],
    ["/a/./b/../c", "/a/c"],
    ["/a//b///c/", "/a/b/c/"],
    ["//a", "/a"],
    ["/a/..", "/"],
    ["/a/b/..", "/a/"],
    ["/a/.", "/a/"],
    ["/.well-known/jwks.json", "/.well-known/jwks.json"],
    ["/a/...", "/a/..."],
    ["/a/%7Euser", "/a/~user"],
    ["/%61dmin", "/admin"],
    ["/demo.v1.DemoService/%44eleteItem", "/demo.v1.DemoService/DeleteItem"],
    ["/a/%2e%2e/b", "/b"],
    ["/a/%2E/b", "/a/b"],
    ["/a/%3b/%3F/%20", "/a/%3B/%3F/%20"],
    ["/a/%25", "/a/%25"],
    ["/caf%c3%a9", "/caf%C3%A9"],
    ["/a;jsessionid=x/b", "/a;jsessionid=x/b"],
    ["/a/b;x/../c", "/a/c"],
    ["http://example.com/healthz?x=1", "/healthz"],
    ["http://example.com", "/"],
    ["http://example.com?x", "/"],
  ])("%s → %s", (target, path) => {
    expect(canonicalPath(target, STRICT)).toEqual({ ok: true, path, judgedPath: path });
  });

  it("returns a clean path as it came, without copying", () => {
    const target = "/api/orders/42";
    const result = canonicalPath(target, STRICT);
    expect(result.ok && result.path).toBe(target);
  });
});

describe("canonical path: refusals", () => {
  it.each([
    // Length: bytes of the path, the query does not count.
    [`/${"a".repeat(4096)}`, "path_too_long"],
    // Raw bytes outside printable ASCII, raw backslash.
    ["/a\u0000b", "invalid_path"],
    ["/a\tb", "invalid_path"],
    ["/a b", "invalid_path"],
    ["/a\u007fb", "invalid_path"],
    ["/caf\u00e9", "invalid_path"],
    ["/public/..\\admin", "ambiguous_path"],
    ["/a\\b", "ambiguous_path"],
    // Encoded slash and backslash, any case.
    ["/public/..%2fadmin", "ambiguous_path"],
    ["/admin%2Fx", "ambiguous_path"],
    ["/a%5cb", "ambiguous_path"],
    ["/a%5Cb", "ambiguous_path"],
    // Escapes of control characters, malformed escapes, escapes that are not UTF-8.
    ["/a%00", "invalid_path"],
    ["/a%0a", "invalid_path"],
    ["/a%1F", "invalid_path"],
    ["/a%7f", "invalid_path"],
    ["/a%", "invalid_path"],
    ["/a%zz", "invalid_path"],
    ["/a%4", "invalid_path"],
    ["/a%ff", "invalid_path"],
    ["/a%c3", "invalid_path"],
    ["/a%c3x", "invalid_path"],
    ["/a%80", "invalid_path"],
    ["/a%c0%af", "invalid_path"],
    ["/a%ed%a0%80", "invalid_path"],
    // Dot segments that climb above the root or carry ;-parameters.
    ["/..", "ambiguous_path"],
    ["/a/../..", "ambiguous_path"],
    ["/a/../../b", "ambiguous_path"],
    ["/%2e%2e/a", "ambiguous_path"],
    ["/public/..;/admin", "ambiguous_path"],
    ["/public/..;foo/admin", "ambiguous_path"],
    ["/public/.;x/admin", "ambiguous_path"],
    ["/public/%2e%2e;/admin", "ambiguous_path"],
    // Not a path at all.
    ["*", "invalid_path"],
    ["admin", "invalid_path"],
    ["", "invalid_path"],
    ["http:\\\\example.com\\admin", "invalid_path"],
    ["http://example.com\\admin", "ambiguous_path"],
  ])("%j → %s", (target, code) => {
    const result = canonicalPath(target, STRICT);
    expect(result).toMatchObject({ ok: false, code });
  });

  it("caps the raw path length, not the query's", () => {
    const longest = `/${"a".repeat(4095)}`;
    expect(canonicalPath(longest, STRICT).ok).toBe(true);
    expect(canonicalPath(`${longest}?${"q".repeat(10_000)}`, STRICT).ok).toBe(true);
    expect(canonicalPath(`${longest}a`, STRICT)).toMatchObject({ ok: false, code: "path_too_long" });
    expect(canonicalPath(`/${"a/".repeat(100)}`, { ...STRICT, maxLength: 100 })).toMatchObject({
      ok: false,
      code: "path_too_long",
    });
  });
});

describe("canonical path: encoded slashes when allowed", () => {
  it.each([
    ["/admin%2Fx", "/admin%2Fx", "/admin/x"],
    ["/admin%2fx", "/admin%2Fx", "/admin/x"],
    ["/a%5cb", "/a%5Cb", "/a/b"],
    ["/files/a%2F%2Fb", "/files/a%2F%2Fb", "/files/a/b"],
    ["/Admin%2F", "/Admin%2F", "/Admin/"],
  ])("%s is forwarded as %s and judged as %s", (target, path, judgedPath) => {
    expect(canonicalPath(target, LENIENT)).toEqual({ ok: true, path, judgedPath });
  });

  it.each(["/public/..%2fadmin", "/public%2F..%2Fadmin", "/a%2F.%2Fb"])(
    "refuses %s, whose dot segments appear once %%2F is read as /",
    (target) => {
      expect(canonicalPath(target, LENIENT)).toMatchObject({ ok: false, code: "ambiguous_path" });
    },
  );
});

describe("canonical path: helpers of the front ends that cannot rewrite the path", () => {
  it.each([
    ["/a/b", "/a/b", true],
    ["/a/%3b", "/a/%3B", true],
    ["/a/%61", "/a/a", false],
    ["/a//b", "/a/b", false],
    ["/A", "/a", false],
  ])("isCanonical(%s, %s) is %s", (raw, canonical, expected) => {
    expect(isCanonical(raw, canonical)).toBe(expected);
  });

  it.each([
    ["/a/b?c#d", "/a/b"],
    ["http://h/a?x", "/a"],
    ["http://h", "/"],
  ])("rawPathOf(%s) is %s", (target, path) => {
    expect(rawPathOf(target)).toBe(path);
  });
});
