import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { logsDirectory, secretsDirectory } from "./support/run-directory.ts";
import { report } from "./support/scenario.ts";
import { needlesOf, SecretIndex } from "./support/secret-scan.ts";

/**
 * Runs last (files run in name order): every line every process of this run printed (token services,
 * sidecars, the private Postgres and Redis) against every access token, refresh token, client secret
 * and master key the scenarios handled. None may appear, whole or by its secret part.
 */

const read = (dir: string) =>
  existsSync(dir) ? readdirSync(dir).map((f) => ({ name: f, text: readFileSync(join(dir, f), "utf8") })) : [];

describe("the secret scanner", () => {
  const refresh = `gthr_${"A1b2C3d4".repeat(5)}xyz`;
  const jwt = `eyJhbGciOiJFZERTQSJ9.${"eyJzdWIiOiJhbGljZSJ9".repeat(3)}.${"c2lnbmF0dXJl".repeat(6)}`;
  const index = new SecretIndex();
  index.add(refresh);
  index.add(jwt);

  it("finds a secret whole, by its body, by a JWT's payload or signature, and glued to other text", () => {
    expect(index.find(`{"msg":"refresh","token":"${refresh}"}`)).toContain(refresh);
    expect(index.find(`body=${refresh.slice(5)}`)).toContain(refresh.slice(5));
    expect(index.find(`payload:${jwt.split(".")[1]}`)).toHaveLength(1);
    expect(index.find(`sig ${jwt.split(".")[2]}!`)).toHaveLength(1);
    expect(index.find(`xx${refresh}yy`).length).toBeGreaterThan(0);
  });

  it("does not flag fingerprints, ids or a JWT's public header", () => {
    expect(
      index.find(`{"token_fp":"0123456789abcdef","sessionId":"6f1c2a9e-0000-4000-8000-000000000000"}`),
    ).toEqual([]);
    expect(needlesOf(jwt)).not.toContain(jwt.split(".")[0]);
    expect(index.find(jwt.split(".")[0]!)).toEqual([]);
  });
});

describe("log check over the whole run", () => {
  it("no token or secret the suite handled appears in any captured log line", (ctx) => {
    const secrets = read(secretsDirectory()).flatMap((f) => f.text.split("\n").filter(Boolean));
    const logs = read(logsDirectory());
    if (secrets.length === 0 || logs.length === 0) {
      ctx.skip("no scenario ran before this file in this run: nothing to check");
      return;
    }
    const index = new SecretIndex();
    for (const s of secrets) index.add(s);
    const leaks = logs.flatMap((log) => index.scan(log.name, log.text));
    const lines = logs.reduce((n, l) => n + l.text.split("\n").length, 0);
    const bytes = logs.reduce((n, l) => n + Buffer.byteLength(l.text), 0);
    report("Log check", {
      "logs scanned": `${logs.length} files (${logs
        .map((l) => l.name.replace(/-\d+\.log$/, ""))
        .filter((v, i, a) => a.indexOf(v) === i)
        .join(", ")})`,
      "lines / bytes": `${lines} / ${bytes}`,
      "secrets looked for": `${secrets.length} (${index.size} strings: whole tokens, token bodies, JWT payloads and signatures)`,
      leaks: leaks.length,
    });
    expect(
      leaks.slice(0, 20).map((l) => `${l.source}:${l.lineNumber}: ${l.what}: ${l.line}`),
      `${leaks.length} log lines carry a token or secret`,
    ).toEqual([]);
  });
});
