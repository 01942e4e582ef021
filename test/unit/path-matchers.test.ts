import { describe, expect, it } from "vitest";
import {
  exactPath,
  grpcMethod,
  loosePath,
  pathGlob,
  pathPrefix,
  RequestPath,
} from "../../services/sidecar/policy/path-matchers.ts";

/**
 * The path tests of the route policy one row at a time, on canonical paths as the guard passes them:
 * a guarded rule (`guarded: true`) judges the loose view, a public one the exact path.
 */

const on = (path: string, forwarded?: string) => new RequestPath(path, forwarded);

describe("loosePath", () => {
  it.each([
    ["/", "/"],
    ["/a", "/a"],
    ["/a/", "/a"],
    ["/A", "/a"],
    ["/Z", "/z"],
    ["/@[`{", "/@[`{"],
    ["/Admin/Panel/", "/admin/panel"],
    ["/a;x", "/a"],
    ["/a;xy/b", "/a/b"],
    ["/a;x/b;y/", "/a/b"],
    ["/;x/a", "/a"],
    ["/;a/;b/c", "/c"],
    ["/A;X=1/", "/a"],
    ["/;x", "/"],
  ])("%s → %s", (path, loose) => {
    expect(loosePath(path)).toBe(loose);
    expect(on(path).loose).toBe(loose);
  });

  it("keeps the exact path, and the forwarded one (the exact one unless given)", () => {
    expect(on("/A/")).toMatchObject({ exact: "/A/", forwarded: "/A/" });
    expect(on("/a/b", "/a%2Fb")).toMatchObject({ exact: "/a/b", forwarded: "/a%2Fb" });
  });
});

type Row = [pattern: string, path: string, guarded: boolean, public_: boolean];

describe("exactPath", () => {
  it.each<Row>([
    ["/a", "/a", true, true],
    ["/a", "/A", true, false],
    ["/a", "/a/", true, false],
    ["/a", "/a;x", true, false],
    ["/a", "/ab", false, false],
    ["/a", "/a/b", false, false],
    ["/a/", "/a", true, false],
    ["/a/", "/a/", true, true],
    ["/A", "/a", true, false],
    ["/", "/", true, true],
  ])("%s on %s: guarded %s, public %s", (pattern, path, guarded, public_) => {
    expect(exactPath(pattern, true)(on(path))).toBe(guarded);
    expect(exactPath(pattern, false)(on(path))).toBe(public_);
  });
});

describe("pathPrefix", () => {
  it.each<Row>([
    ["/api", "/api", true, true],
    ["/api", "/api/", true, true],
    ["/api", "/api/x/y", true, true],
    ["/api", "/apiary", false, false],
    ["/api", "/ap", false, false],
    ["/api", "/API/x", true, false],
    ["/api", "/api;x", true, false],
    ["/api", "/api/x;y", true, false],
    ["/api", "/x/api", false, false],
    ["/api/", "/api", true, false],
    ["/api/", "/api/", true, true],
    ["/api/", "/api/x", true, true],
    ["/api/", "/apix", false, false],
    ["/API", "/api/x", true, false],
    ["/", "/", true, true],
    ["/", "/anything/at;all", true, false],
    ["/", "/Anything", true, true],
  ])("%s on %s: guarded %s, public %s", (pattern, path, guarded, public_) => {
    expect(pathPrefix(pattern, true)(on(path))).toBe(guarded);
    expect(pathPrefix(pattern, false)(on(path))).toBe(public_);
  });
});

describe("pathGlob", () => {
  it.each<Row>([
    ["/a/*", "/a/b", true, true],
    ["/a/*", "/a/", true, true],
    ["/a/*", "/a", true, false],
    ["/a/*", "/a/b/c", false, false],
    ["/a/*", "/A/B", true, false],
    ["/a/*", "/a/b;c", true, false],
    ["/a/*/", "/a/b/", true, true],
    ["/a/*/", "/a/b", true, false],
    ["/a/b*", "/a/b", true, true],
    ["/a/b*", "/a/bcd", true, true],
    ["/a/b*", "/a", false, false],
    ["/a/b*", "/a/c", false, false],
    ["/a/?", "/a/b", true, true],
    ["/a/?", "/a/", false, false],
    ["/a/?", "/a/bc", false, false],
    ["/a/??", "/a/b", false, false],
    ["/*x", "/abx", true, true],
    ["/*x", "/x", true, true],
    ["/*x", "/abxy", false, false],
    ["/*x*", "/axbxc", true, true],
    ["/a*", "/b", false, false],
    ["/*", "/", true, true],
    ["/*", "/a", true, true],
    ["/*", "/a/b", false, false],
    ["/**", "/", true, true],
    ["/**", "/a/b/c", true, true],
    ["/a/**", "/a", true, true],
    ["/a/**", "/ab", false, false],
    ["/a/**", "/b/a", false, false],
    ["/a/**/z", "/a/z", true, true],
    ["/a/**/z", "/a/b/z", true, true],
    ["/a/**/z", "/a/b/c/z/", true, false],
    ["/a/**/z", "/a/b/c/y", false, false],
    ["/a/**/z", "/a/z/b", false, false],
    ["/**/z/**/y", "/a/z/b/z/c/y", true, true],
    ["/**/z/**/y", "/a/z/b/z/c/x", false, false],
    ["/a/**/**/z", "/a/b/z", true, true],
    ["/a/**/b/*", "/a/x/b/c", true, true],
    ["/a/**/b/*", "/a/x/b/c/d", false, false],
    ["/", "/", true, true],
    ["/", "/a", false, false],
  ])("%s on %s: guarded %s, public %s", (pattern, path, guarded, public_) => {
    expect(pathGlob(pattern, true)(on(path))).toBe(guarded);
    expect(pathGlob(pattern, false)(on(path))).toBe(public_);
  });

  it.each(["/a**", "/**a", "/a/b**/c", "/***"])("refuses %s: ** must be a whole segment", (pattern) => {
    expect(() => pathGlob(pattern, true)).toThrow('"**" must be a whole path segment');
    expect(() => pathGlob(pattern, false)).toThrow('"**" must be a whole path segment');
  });
});

describe("grpcMethod", () => {
  it.each<Row>([
    ["/a.v1.Svc/Get", "/a.v1.Svc/Get", true, true],
    ["/a.v1.Svc/Get", "/a.v1.svc/get", true, false],
    ["/a.v1.Svc/Get", "/a.v1.Svc/Get/", true, false],
    ["/a.v1.Svc/Get", "/a.v1.Svc/Get;x", true, false],
    ["/a.v1.Svc/Get", "/a.v1.Svc/GetX", false, false],
    ["/a.v1.Svc/Get", "/a.v1.Svc", false, false],
    ["/a.v1.Svc/*", "/a.v1.Svc/Get", true, true],
    ["/a.v1.Svc/*", "/a.v1.Svc/", true, false],
    ["/a.v1.Svc/*", "/a.v1.Svc", true, false],
    ["/a.v1.Svc/*", "/a.v1.Svc/Get/x", true, false],
    ["/a.v1.Svc/*", "/a.v1.Svc/Get;x", true, false],
    ["/a.v1.Svc/*", "/A.V1.SVC/Get", true, false],
    ["/a.v1.Svc/*", "/a.v1.SvcX/Get", false, false],
    ["/a.v1.Svc/*", "/a.v1.Sv/Get", false, false],
    ["/_a/_b", "/_a/_b", true, true],
  ])("%s on %s: guarded %s, public %s", (pattern, path, guarded, public_) => {
    expect(grpcMethod(pattern, true)(on(path))).toBe(guarded);
    expect(grpcMethod(pattern, false)(on(path))).toBe(public_);
  });

  it.each([
    "a.v1.Svc/Get",
    "/a.v1.Svc/Get/x",
    "/a.v1.Svc/",
    "/a.v1.Svc",
    "/a.v1.Svc/*x",
    "/a.v1.Svc/G-t",
    "/1a.Svc/Get",
    "/a.v1.Svc/1Get",
    "/a-b.Svc/Get",
    "/a.v1.Svc/Get ",
    " /a.v1.Svc/Get",
  ])("refuses %j", (pattern) => {
    expect(() => grpcMethod(pattern, true)).toThrow(
      'must look like "/pkg.Service/Method" or "/pkg.Service/*"',
    );
  });
});
