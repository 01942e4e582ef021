import { Writable } from "node:stream";
import { describe, expect, it } from "vitest";
import { createLogger, fingerprint, SECRET_HEADERS } from "../../services/shared/logging/index.ts";
import { IDENTITY_HEADERS } from "../../services/sidecar/control/identity-headers.ts";

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

  const sensitive = {
    authorization: `Bearer ${TOKEN}`,
    "proxy-authorization": `Basic ${TOKEN}`,
    cookie: `session=${TOKEN}`,
    "set-cookie": [`session=${TOKEN}; HttpOnly`],
    [IDENTITY_HEADERS.token]: TOKEN,
  };

  it.each([
    [
      "a request's headers",
      { req: { method: "GET", url: "/orders", headers: { ...sensitive, accept: "*/*" } } },
    ],
    ["a response's headers", { res: { statusCode: 200, headers: sensitive } }],
    ["a bare headers object", { headers: sensitive }],
    ["headers two levels down", { upstream: { req: { headers: sensitive } } }],
  ])("redacts every credential header in %s, keeping the others", (_label, fields) => {
    const { lines, log } = capture();
    log.info(fields, "proxied");
    expect(lines).toHaveLength(1);
    expect(lines[0]).not.toContain(TOKEN);
    const logged = JSON.stringify(JSON.parse(lines[0]!));
    for (const header of Object.keys(sensitive)) expect(logged).toContain(`"${header}":"[redacted]"`);
  });

  it("keeps a non-secret header and names only headers that exist", () => {
    const { lines, log } = capture();
    log.info({ req: { headers: { accept: "text/html", [IDENTITY_HEADERS.subject]: "alice" } } }, "proxied");
    expect(JSON.parse(lines[0]!).req.headers).toEqual({
      accept: "text/html",
      [IDENTITY_HEADERS.subject]: "alice",
    });
    // The sidecar's token header is the one it forwards, not a name that was never sent.
    expect(SECRET_HEADERS).toContain(IDENTITY_HEADERS.token);
    expect(SECRET_HEADERS).not.toContain("x-gatehouse-token");
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
