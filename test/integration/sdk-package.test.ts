import { execFile } from "node:child_process";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import * as client from "gatehouse/client";
import * as connect from "gatehouse/connect";
import * as express from "gatehouse/express";
import * as verify from "gatehouse/verify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

/**
 * The SDK as a package: the names each entry point exports (an accidental export of an internal
 * fails here), and the built dist/sdk imported by a plain `node` process that knows the package
 * only by its name, plus a TypeScript consumer type-checked against the built declarations.
 */
const PUBLIC_NAMES: Record<string, string[]> = {
  verify: ["GatehouseError", "createGatehouseVerifier"],
  express: ["gatehouseAuth"],
  connect: ["compilePolicy", "createAuthInterceptor", "identityKey"],
  client: ["GatehouseError", "createTokenClient"],
};

const run = promisify(execFile);
const root = resolve(import.meta.dirname, "../..");
const temp = mkdtempSync(join(tmpdir(), "gatehouse-sdk-"));
afterAll(() => rmSync(temp, { recursive: true, force: true }));

describe("public names", () => {
  it("each entry point exports exactly its documented names", () => {
    const loaded = { verify, express, connect, client };
    for (const [entry, names] of Object.entries(PUBLIC_NAMES)) {
      expect([entry, Object.keys(loaded[entry as keyof typeof loaded]).sort()]).toEqual([entry, names]);
    }
  });

  it("exports nothing but the four entry points (and package.json)", async () => {
    const { default: pkg } = await import("../../package.json", { with: { type: "json" } });
    expect(Object.keys(pkg.exports).sort()).toEqual(
      ["./client", "./connect", "./express", "./package.json", "./verify"].sort(),
    );
  });
});

describe("the built package", () => {
  // The package as a consumer sees it: this package.json, its dependencies, and dist/sdk built by
  // `npm run build:sdk` — into a copy, so that the test neither depends on nor disturbs the
  // checkout's own dist/. The consumer lives beside it, with the package linked in as `gatehouse`.
  const pkg = join(temp, "pkg");
  const app = join(temp, "app");
  beforeAll(async () => {
    mkdirSync(pkg);
    copyFileSync(join(root, "package.json"), join(pkg, "package.json"));
    symlinkSync(join(root, "node_modules"), join(pkg, "node_modules"), "dir");
    await run("npm", ["run", "build:sdk", "--", "--outDir", join(pkg, "dist/sdk")], { cwd: root });
    mkdirSync(join(app, "node_modules"), { recursive: true });
    symlinkSync(pkg, join(app, "node_modules/gatehouse"), "dir");
    writeFileSync(join(app, "package.json"), JSON.stringify({ type: "module" }));
  }, 240_000);

  it("loads by its public name in plain node", async () => {
    for (const entry of Object.keys(PUBLIC_NAMES)) {
      expect(existsSync(join(pkg, "dist/sdk/sdk", `${entry}.js`))).toBe(true);
      expect(existsSync(join(pkg, "dist/sdk/sdk", `${entry}.d.ts`))).toBe(true);
    }
    writeFileSync(
      join(app, "consumer.mjs"),
      `
const names = {};
for (const entry of ${JSON.stringify(Object.keys(PUBLIC_NAMES))}) {
  names[entry] = Object.keys(await import("gatehouse/" + entry)).sort();
}
const { createGatehouseVerifier, GatehouseError } = await import("gatehouse/verify");
const client = await import("gatehouse/client");
const verifier = createGatehouseVerifier({
  issuer: "https://auth.test",
  audiences: ["orders"],
  jwksUrl: "http://127.0.0.1:9/.well-known/jwks.json",
  revocation: "none",
});
const code = await verifier.verify("").then(() => "accepted", (err) => err instanceof GatehouseError && err.code);
await verifier.close();
let internal = "refused";
try { await import("gatehouse/services/sdk/verify.ts"); internal = "imported"; } catch (err) { internal = err.code; }
console.log(JSON.stringify({ names, code, sameErrorClass: client.GatehouseError === GatehouseError, internal }));
`,
    );
    const { stdout } = await run(process.execPath, ["consumer.mjs"], { cwd: app });
    expect(JSON.parse(stdout)).toEqual({
      names: PUBLIC_NAMES,
      code: "missing_token",
      sameErrorClass: true,
      internal: "ERR_PACKAGE_PATH_NOT_EXPORTED",
    });
  });

  it("type-checks a TypeScript consumer against the built declarations", { timeout: 240_000 }, async () => {
    writeFileSync(
      join(app, "consumer.ts"),
      `
import { createTokenClient, type TokenSet } from "gatehouse/client";
import { createAuthInterceptor } from "gatehouse/connect";
import { gatehouseAuth } from "gatehouse/express";
import { createGatehouseVerifier, GatehouseError, type GatehouseErrorCode, type Identity } from "gatehouse/verify";

const verifier = createGatehouseVerifier({ issuer: "i", audiences: ["a"], jwksUrl: "http://x", revocation: "none" });
export const middleware = gatehouseAuth({ verifier });
export const interceptor = createAuthInterceptor({ verifier });
export async function check(token: string): Promise<string> {
  try {
    const claims: Identity = await verifier.verify(token, { scopes: { allOf: ["orders:read"] } });
    return claims.subject;
  } catch (err) {
    if (err instanceof GatehouseError) {
      const code: GatehouseErrorCode = err.code;
      return code;
    }
    throw err;
  }
}
const client = createTokenClient({ baseUrl: "http://x", credentials: { clientId: "c", clientSecret: "s" } });
export const refreshed: Promise<TokenSet> = client.refresh("gthr_x");
// @ts-expect-error: scopes are a list, not a string
client.issue({ subject: "s", scopes: "orders:read" });
`,
    );
    writeFileSync(
      join(app, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: {
          module: "NodeNext",
          moduleResolution: "NodeNext",
          target: "ES2023",
          strict: true,
          noEmit: true,
          skipLibCheck: true,
          types: ["node"],
          typeRoots: [join(root, "node_modules/@types")],
        },
        files: ["consumer.ts"],
      }),
    );
    const tsc = join(root, "node_modules/typescript/bin/tsc");
    const result = await run(process.execPath, [tsc, "-p", "tsconfig.json"], { cwd: app }).then(
      () => "",
      (err: { stdout: string }) => err.stdout,
    );
    expect(result).toBe("");
  });
});
