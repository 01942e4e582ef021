import { execFile, execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import tls from "node:tls";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { main } from "../../services/cli/main.ts";
import { createLogger } from "../../services/shared/logging/index.ts";
import { type RunningTokenService, startTokenService } from "../../services/token/token-service.ts";
import { grpcAdminClient } from "../support/admin-clients.ts";
import { type TestDatabase, useTestDatabase } from "../support/database.ts";
import { createTestClient } from "../support/token-fixtures.ts";
import { testServiceSettings } from "../support/token-service-settings.ts";

/**
 * The CLI's flags: every command refuses one it does not know (exit 2 and its usage), `version`
 * and `--version`, and `--tls-ca` against a TLS endpoint whose certificate comes from a CA made
 * here with openssl.
 */
const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const BIN = join(ROOT, "bin/gatehouse.mjs");
const execFileAsync = promisify(execFile);

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function gatehouse(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return execFileAsync(process.execPath, [BIN, ...args], {
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", ...env },
    timeout: 60_000,
  }).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (err: { code: number; stdout: string; stderr: string }) => ({
      code: err.code,
      stdout: err.stdout,
      stderr: err.stderr,
    }),
  );
}

/** `main` in this process, with what it writes captured. */
async function inProcess(args: string[]): Promise<Run> {
  let stdout = "";
  let stderr = "";
  const out = process.stdout.write;
  const err = process.stderr.write;
  process.stdout.write = ((chunk: string) => {
    stdout += chunk;
    return true;
  }) as typeof process.stdout.write;
  process.stderr.write = ((chunk: string) => {
    stderr += chunk;
    return true;
  }) as typeof process.stderr.write;
  try {
    const code = await main(args);
    return { code, stdout, stderr };
  } finally {
    process.stdout.write = out;
    process.stderr.write = err;
  }
}

/** The commands and subcommands the CLI lists in its own help. */
async function everyCommand(): Promise<string[][]> {
  const listed = (text: string, heading: string) =>
    text
      .slice(text.indexOf(heading) + heading.length)
      .split("\n\n")[0]!
      .split("\n")
      .map((line) => /^ {2}(\S+)/.exec(line)?.[1])
      .filter((name): name is string => name !== undefined);
  const commands = listed((await inProcess(["--help"])).stdout, "Commands:");
  const all: string[][] = [];
  for (const name of commands) {
    const help = (await inProcess([name, "--help"])).stdout;
    if (help.includes("Subcommands:")) for (const sub of listed(help, "Subcommands:")) all.push([name, sub]);
    else all.push([name]);
  }
  return all;
}

describe("unknown flags", () => {
  it("every command and subcommand refuses one: exit 2, the message, its usage", async () => {
    const commands = await everyCommand();
    expect(commands.map((c) => c.join(" "))).toEqual(
      expect.arrayContaining([
        "serve",
        "sidecar",
        "dev",
        "migrate",
        "keys rotate",
        "clients apply",
        "version",
      ]),
    );
    for (const command of commands) {
      const r = await inProcess([...command, "--no-such-flag", "x"]);
      expect(r.code, command.join(" ")).toBe(2);
      expect(r.stderr, command.join(" ")).toMatch(
        /(unknown flag --no-such-flag|Unknown option '--no-such-flag')/,
      );
      expect(r.stderr, command.join(" ")).toContain(`Usage: gatehouse ${command[0]}`);
      expect(r.stdout).toBe("");
    }
  });

  it("a misspelt setting stops serve and sidecar before they start (real processes)", {
    timeout: 120_000,
  }, async () => {
    const [serve, sidecar] = await Promise.all([
      gatehouse(["serve", "--isuer", "https://typo"], {
        GATEHOUSE_ISSUER: "https://auth.test",
        GATEHOUSE_LISTEN: "127.0.0.1:0",
        GATEHOUSE_HTTP_LISTEN: "127.0.0.1:0",
        GATEHOUSE_ADMIN_LISTEN: "127.0.0.1:0",
      }),
      gatehouse([
        "sidecar",
        "--issuer",
        "https://auth.test",
        "--upstream=http://127.0.0.1:9",
        "--fail-mod",
        "open",
      ]),
    ]);
    expect(serve.code).toBe(2);
    expect(serve.stderr).toMatch(/^gatehouse serve: unknown flag --isuer\n\nUsage: gatehouse serve/);
    expect(serve.stdout).toBe("");
    expect(sidecar.code).toBe(2);
    expect(sidecar.stderr).toMatch(/^gatehouse sidecar: unknown flag --fail-mod\n\nUsage: gatehouse sidecar/);
  });

  it("known setting flags still work, as --name value, --name=value and a bare boolean", async () => {
    // A bad value proves the flag reached the settings: it is reported under the flag's name.
    const r = await inProcess([
      "serve",
      "--database-url",
      "postgres://nobody@127.0.0.1:1/none",
      "--issuer=https://auth.test",
      "--master-key",
      randomBytes(32).toString("base64"),
      "--grpc-reflection",
      "--admin-listen=nowhere",
    ]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/configuration error: --admin-listen: expected host:port/);
  });
});

describe("version", () => {
  const expected = () => {
    const { version } = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string };
    const buildInfo = join(ROOT, "dist", "build-info.json");
    const revision = existsSync(buildInfo)
      ? (JSON.parse(readFileSync(buildInfo, "utf8")) as { revision: string }).revision
      : execFileSync("git", ["rev-parse", "--short", "HEAD"], { cwd: ROOT, encoding: "utf8" }).trim();
    return `gatehouse ${version} (revision ${revision})\n`;
  };

  it("gatehouse --version and gatehouse version print the version and the revision", {
    timeout: 60_000,
  }, async () => {
    const [flag, command] = await Promise.all([gatehouse(["--version"]), gatehouse(["version"])]);
    expect(flag).toEqual({ code: 0, stdout: expected(), stderr: "" });
    expect(command).toEqual({ code: 0, stdout: expected(), stderr: "" });
    expect(flag.stdout).toMatch(/^gatehouse \d+\.\d+\.\d+ \(revision [0-9a-z]+\)\n$/);
  });
});

// --- --tls-ca ------------------------------------------------------------------------------------

const dir = mkdtempSync(join(tmpdir(), "gatehouse-tls-ca-"));
let tdb: TestDatabase;
let service: RunningTokenService;
let terminator: tls.Server;
let tlsPort: number;
let root: { id: string; secret: string };

/** A private CA and a server certificate it signed for 127.0.0.1, made with openssl. */
function makeCertificates(): { key: string; cert: string; ca: string } {
  const ssl = (...args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: "pipe" });
  ssl(
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-nodes",
    "-days",
    "1",
    "-subj",
    "/CN=Gatehouse test CA",
    "-keyout",
    "ca.key",
    "-out",
    "ca.pem",
  );
  ssl(
    "req",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-nodes",
    "-subj",
    "/CN=127.0.0.1",
    "-keyout",
    "server.key",
    "-out",
    "server.csr",
  );
  writeFileSync(join(dir, "san.ext"), "subjectAltName=IP:127.0.0.1\n");
  ssl(
    "x509",
    "-req",
    "-in",
    "server.csr",
    "-CA",
    "ca.pem",
    "-CAkey",
    "ca.key",
    "-CAcreateserial",
    "-days",
    "1",
    "-extfile",
    "san.ext",
    "-out",
    "server.pem",
  );
  return { key: join(dir, "server.key"), cert: join(dir, "server.pem"), ca: join(dir, "ca.pem") };
}

beforeAll(async () => {
  tdb = await useTestDatabase();
  root = {
    id: "root",
    secret: (await createTestClient(tdb.db.prisma, { id: "root", roles: ["admin"] })).secret,
  };
  service = await startTokenService({
    settings: testServiceSettings({ masterKey: randomBytes(32) }),
    database: { kind: "postgres", url: tdb.url },
    logger: createLogger({ level: "silent", component: "token", pretty: false }),
  });
  const admin = grpcAdminClient(service.adminPort, root);
  await admin.rotateSigningKeys({});
  admin.close();
  // TLS in front of the admin plane, as a mesh or an ingress would terminate it: h2 over TLS in,
  // h2c prior knowledge out.
  const files = makeCertificates();
  terminator = tls.createServer(
    { key: readFileSync(files.key), cert: readFileSync(files.cert), ALPNProtocols: ["h2"] },
    (socket) => {
      const upstream = net.connect(service.adminPort, "127.0.0.1");
      socket.pipe(upstream).pipe(socket);
      socket.on("error", () => upstream.destroy());
      upstream.on("error", () => socket.destroy());
    },
  );
  tlsPort = await new Promise<number>((resolve) =>
    terminator.listen(0, "127.0.0.1", () => resolve((terminator.address() as net.AddressInfo).port)),
  );
});
afterAll(async () => {
  await new Promise((resolve) => terminator?.close(resolve));
  await service?.shutdown();
  await tdb?.drop();
  rmSync(dir, { recursive: true, force: true });
});

describe("--tls-ca", () => {
  it("trusts a private CA: refused without it, works with it", { timeout: 120_000 }, async () => {
    const env = { GATEHOUSE_CLIENT_ID: root.id, GATEHOUSE_CLIENT_SECRET: root.secret };
    const server = `127.0.0.1:${tlsPort}`;
    const [systemStore, privateCa, fromEnv, missing] = await Promise.all([
      gatehouse(["keys", "list", "--server", server, "--tls"], env),
      gatehouse(["keys", "list", "--server", server, "--tls-ca", join(dir, "ca.pem")], env),
      gatehouse(["keys", "list", "--server", server, "--json"], {
        ...env,
        GATEHOUSE_TLS_CA: join(dir, "ca.pem"),
      }),
      gatehouse(["keys", "list", "--server", server, "--tls-ca", join(dir, "nope.pem")], env),
    ]);
    expect(systemStore.code).toBe(1);
    expect(systemStore.stderr).toMatch(
      /cannot reach the token service at 127\.0\.0\.1:\d+ .*(certificate|self.signed)/i,
    );
    expect(privateCa.code, privateCa.stderr).toBe(0);
    expect(privateCa.stdout).toMatch(/active/);
    expect(fromEnv.code, fromEnv.stderr).toBe(0);
    expect(JSON.parse(fromEnv.stdout).keys.length).toBeGreaterThan(0);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/--tls-ca: cannot read .*nope\.pem/);
  });
});
