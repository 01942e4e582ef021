import * as http from "node:http";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunningSidecar, startSidecar } from "../../services/sidecar/sidecar.ts";
import {
  removePolicies,
  silentLogger,
  testSidecarSettings,
  writePolicy,
} from "../support/sidecar-fixtures.ts";

/** Issue 14 item 6: resource limits, each a setting (small values here so the tests stay fast). */

const app = http.createServer((req, res) => {
  req.resume();
  req.on("end", () => res.end("ok"));
});
let sidecar: RunningSidecar;

beforeAll(async () => {
  await new Promise<void>((r) => app.listen(0, "127.0.0.1", () => r()));
  sidecar = await startSidecar({
    settings: testSidecarSettings({
      GATEHOUSE_TOKEN_SERVICE_URL: "http://127.0.0.1:9",
      GATEHOUSE_UPSTREAM: `http://127.0.0.1:${(app.address() as AddressInfo).port}`,
      GATEHOUSE_POLICY_FILE: writePolicy("rules:\n  - match: { prefix: /public }\n    public: true\n"),
      GATEHOUSE_REVOCATION: "none",
      GATEHOUSE_BODY_IDLE_TIMEOUT: "300ms",
    }),
    logger: silentLogger(),
  });
});
afterAll(async () => {
  await sidecar?.shutdown(50);
  app.closeAllConnections();
  app.close();
  removePolicies();
});

describe("proxy limits", () => {
  it("advertises SETTINGS_MAX_CONCURRENT_STREAMS 100 to HTTP/2 callers by default", async () => {
    const session = http2.connect(`http://127.0.0.1:${sidecar.proxyPort}`);
    try {
      await new Promise((r) => session.once("remoteSettings", r));
      expect(session.remoteSettings.maxConcurrentStreams).toBe(100);
    } finally {
      session.destroy();
    }
  });

  it("cuts a request body that stops arriving with 408 request_timeout", async () => {
    const started = Date.now();
    const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = http.request(
        { host: "127.0.0.1", port: sidecar.proxyPort, path: "/public/upload", method: "POST", agent: false },
        (res) => {
          let body = "";
          res.on("data", (d) => {
            body += d;
          });
          res.on("end", () => resolve({ status: res.statusCode!, body }));
        },
      );
      req.on("error", reject);
      req.setHeader("transfer-encoding", "chunked");
      req.write("x"); // one byte, then nothing
    });
    expect(answer.status).toBe(408);
    expect(JSON.parse(answer.body)).toMatchObject({ error: "request_timeout" });
    expect(Date.now() - started).toBeLessThan(3000);
  });
});
