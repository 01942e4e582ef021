import { Writable } from "node:stream";
import { describe, expect, it } from "vitest";
import { createLogger, fingerprint } from "../../services/shared/logging/index.ts";

function capture() {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk, _enc, done) {
      lines.push(String(chunk));
      done();
    },
  });
  return { lines, log: createLogger({ level: "info", component: "test", destination, pretty: false }) };
}

const TOKEN = "ghr_c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA";

describe("logger", () => {
  it.each([
    ["top-level token", { token: TOKEN }],
    ["nested refresh token", { request: { refresh_token: TOKEN } }],
    ["camelCase access token", { accessToken: TOKEN }],
    ["authorization header", { req: { headers: { authorization: `Bearer ${TOKEN}` } } }],
    ["client secret", { client: { clientSecret: TOKEN } }],
  ])("redacts a %s", (_label, fields) => {
    const { lines, log } = capture();
    log.info(fields, "handled");
    expect(lines).toHaveLength(1);
    expect(lines[0]).not.toContain(TOKEN);
    expect(lines[0]).toContain("[redacted]");
  });

  it("stamps the component and writes JSON with a string level", () => {
    const { lines, log } = capture();
    log.warn({ token_fp: fingerprint(TOKEN) }, "careful");
    const line = JSON.parse(lines[0]!);
    expect(line).toMatchObject({
      level: "warn",
      component: "test",
      msg: "careful",
      token_fp: fingerprint(TOKEN),
    });
  });
});

describe("fingerprint", () => {
  it("is 16 hex characters, stable, and differs between tokens", () => {
    expect(fingerprint(TOKEN)).toMatch(/^[0-9a-f]{16}$/);
    expect(fingerprint(TOKEN)).toBe(fingerprint(Buffer.from(TOKEN)));
    expect(fingerprint(TOKEN)).not.toBe(fingerprint(`${TOKEN}x`));
    expect(TOKEN).not.toContain(fingerprint(TOKEN));
  });
});
