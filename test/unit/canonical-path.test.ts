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

describe("canonical path: boundaries of each rule", () => {
  it.each([
    // Printable ASCII next to the refused ranges.
    ["/a!b~", "/a!b~"],
    // Each side of every unreserved range, escaped: decoded inside it, upper-cased outside it.
    ["/%2C%2D%2E%2f", "ambiguous_path"],
    ["/%2C%2D%2E%30%39%3A%40%41%5A%5B%5F%60%61%7A%7B%7E", "/%2C-.09%3A%40AZ%5B_%60az%7B~"],
    ["/%20%21%7e", "/%20%21~"],
    // A run of escaped bytes is one UTF-8 sequence, ended by an escape below 0x80 or by a literal.
    ["/%e2%82%ac%41", "/%E2%82%ACA"],
    ["/%c3%a9%c3%a9", "/%C3%A9%C3%A9"],
    ["/%c3%80", "/%C3%80"],
    ["/%c3%a9x%c3%a9", "/%C3%A9x%C3%A9"],
    ["/%c3%a9%zz", "invalid_path"],
    ["/%c3%a9%", "invalid_path"],
    ["/%e2%82x%ac", "invalid_path"],
    // Dot segments at the root and with a trailing slash.
    ["/.", "/"],
    ["/./", "/"],
    ["/a/./", "/a/"],
    ["/a/../", "/"],
    ["/a/b/../", "/a/"],
    ["/a/b/../..", "/"],
    ["/a/./b/./", "/a/b/"],
    ["/.a/..b/a.", "/.a/..b/a."],
    ["/a;x/.", "/a;x/"],
    ["/a/..;", "ambiguous_path"],
    ["/a/.;", "ambiguous_path"],
    ["/a/b;/..", "/a/"],
    ["/a//../b", "/b"],
  ])("%s → %s", (target, expected) => {
    const result = canonicalPath(target, STRICT);
    if (expected.startsWith("/")) expect(result).toEqual({ ok: true, path: expected, judgedPath: expected });
    else expect(result).toMatchObject({ ok: false, code: expected });
  });

  it.each([
    // The cap is checked before the bytes past it: a long path is too long, whatever it holds.
    ["/abc\u0000", 4, "path_too_long"],
    ["/abc\\", 4, "path_too_long"],
    ["/abcd", 4, "path_too_long"],
    ["/abc", 4, "ok"],
    ["/abc?\u0000\\", 4, "ok"],
    ["http://h/abc", 4, "ok"],
    ["http://h/abcd", 4, "path_too_long"],
    ["/a%41", 5, "ok"],
    ["/a%41", 4, "path_too_long"],
  ])("%j with a cap of %i → %s", (target, maxLength, expected) => {
    const result = canonicalPath(target, { maxLength, allowEncodedSlashes: false });
    expect(result.ok ? "ok" : result.code).toBe(expected);
  });

  it("names each refusal in its message", () => {
    const message = (target: string, options = STRICT) => {
      const result = canonicalPath(target, options);
      return result.ok ? "ok" : result.message;
    };
    expect(message("admin")).toBe("the request target is not a path");
    expect(message("/a\u0001")).toBe("the path holds a control, space or non-ASCII byte");
    expect(message("/a\\")).toBe("the path holds a backslash");
    expect(message("/abcd", { ...STRICT, maxLength: 3 })).toBe("the path is longer than 3 bytes");
    expect(message("/%g0")).toBe("the path holds a malformed percent-escape");
    expect(message("/%01")).toBe("the path holds an escaped control character");
    expect(message("/%ff")).toBe("the path holds percent-escapes that are not valid UTF-8");
    expect(message("/%2f")).toBe("the path holds an encoded / or \\");
    expect(message("/..;/a")).toBe("the path holds a dot segment with ;-parameters");
    expect(message("/a%2F..", LENIENT)).toBe("the path holds a dot segment once encoded slashes are read");
    expect(message("/..")).toBe("the path climbs above the root");
  });

  it.each([
    ["/a%2Fb;x/../c", "/c", "/c"],
    ["/a/%2F/b", "/a/%2F/b", "/a/b"],
    ["/a%2f%2e%2e", "ambiguous_path", ""],
    ["/a/b%2F", "/a/b%2F", "/a/b/"],
    ["/%5c", "/%5C", "/"],
    ["/a%3Bb%2Fc", "/a%3Bb%2Fc", "/a%3Bb/c"],
  ])("allowed encoded slashes: %s is forwarded as %s and judged as %s", (target, path, judgedPath) => {
    const result = canonicalPath(target, LENIENT);
    if (path.startsWith("/")) expect(result).toEqual({ ok: true, path, judgedPath });
    else expect(result).toMatchObject({ ok: false, code: path });
  });

  it.each([
    ["/a/b", "/a/b"],
    ["admin?x", "admin"],
    ["/a#b?c", "/a"],
    ["/a?b#c", "/a"],
    ["http://h/a#f", "/a"],
    ["http://h?x", "/"],
    ["http://h#x", "/"],
    ["https+x://h:8080/p/q?r", "/p/q"],
    ["http://h/", "/"],
    ["http://h/a/", "/a/"],
  ])("rawPathOf(%j) is %s", (target, path) => {
    expect(rawPathOf(target)).toBe(path);
  });

  it.each([
    ["/a%3b%3f", "/a%3B%3F", true],
    ["/a%3B", "/a%3B", true],
    ["/a%3B", "/a%3b", false],
    ["/a%3bx", "/a%3Bx", true],
    ["/a%3b", "/a%3C", false],
    ["/a/b", "/a/c", false],
    ["/a", "/a/", false],
  ])("isCanonical(%s, %s) is %s", (raw, canonical, expected) => {
    expect(isCanonical(raw, canonical)).toBe(expected);
  });
});
