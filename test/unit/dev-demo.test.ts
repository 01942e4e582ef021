import { randomUUID } from "node:crypto";
import { describe, expect, it } from "vitest";
import { renderBanner, walkthrough } from "../../services/dev/banner.ts";
import { answerDemoRequest } from "../../services/dev/demo-app.ts";
import { newDevState } from "../../services/dev/dev-state.ts";
import { createInProcessBus } from "../../services/shared/revocation/in-process-bus.ts";
import { encodeRevocationEntry } from "../../services/shared/revocation/revocation-entry.ts";
import type { RevokableToken } from "../../services/sidecar/revocation-state/index.ts";
import { createBusFollower } from "../../services/sidecar/revocation-stream/bus-follower.ts";

const quiet = { info() {}, warn() {} };

describe("demo app answers", () => {
  const identity = {
    "x-gatehouse-subject": "alice",
    "x-gatehouse-client-id": "demo-app",
    "x-gatehouse-scopes": "profile orders:read",
    "x-gatehouse-session-id": "sid-1",
  };

  it.each<[string, string, Record<string, string>, number, Record<string, unknown>]>([
    [
      "identity from the sidecar",
      "/hello?x=1",
      identity,
      200,
      {
        hello: "alice",
        path: "/hello",
        identity: {
          subject: "alice",
          clientId: "demo-app",
          scopes: ["profile", "orders:read"],
          sessionId: "sid-1",
        },
      },
    ],
    ["no identity headers: called around the sidecar", "/hello", {}, 401, { error: "no_identity" }],
    ["public route, no identity", "/public", {}, 200, { public: true }],
    ["below the public route", "/public/x", {}, 200, { public: true }],
    ["a path that only starts like the public one", "/publicity", {}, 401, { error: "no_identity" }],
  ])("%s", (_name, path, headers, status, body) => {
    const answer = answerDemoRequest("GET", path, headers);
    expect(answer.status).toBe(status);
    expect(answer.body).toMatchObject(body);
  });
});

describe("dev banner", () => {
  const state = newDevState();
  const urls = {
    grpc: "127.0.0.1:7400",
    http: "http://127.0.0.1:7480",
    proxy: "http://127.0.0.1:7401",
    control: "http://127.0.0.1:7402",
    app: "http://127.0.0.1:7410",
    admin: "127.0.0.1:7490",
  };

  it("walks through issue, call, revoke, call again, each one command line with the real URLs", () => {
    const steps = walkthrough(urls, state);
    expect(steps.map((s) => s.command.split(" ")[0])).toEqual(["ISSUED=$(curl", "curl", "curl", "curl"]);
    for (const step of steps) expect(step.command).not.toContain("\n");
    expect(steps[0]!.command).toContain(`-u 'demo-app:${state.clients.demo.secret}'`);
    expect(steps[0]!.command).toContain(`${urls.http}/gatehouse.v1.TokenService/Issue`);
    expect(steps[1]!.command).toContain(`${urls.proxy}/hello`);
    expect(steps[2]!.command).toContain(`${urls.http}/gatehouse.v1.TokenService/Revoke`);
    expect(steps[3]!.command).toBe(steps[1]!.command);
  });

  it("prints every URL and both clients' credentials", () => {
    const text = renderBanner({
      urls,
      state,
      data: "/tmp/x",
      revocations: "in-process bus",
      issuer: "http://127.0.0.1:7480",
      policyFile: "demo-policy.yaml",
    });
    for (const url of Object.values(urls)) expect(text).toContain(url);
    expect(text).toContain(`${urls.http}/.well-known/jwks.json`);
    expect(text).toContain(state.clients.demo.secret);
    expect(text).toContain(state.clients.admin.secret);
    expect(text).not.toContain(state.masterKey);
  });
});

describe("bus follower", () => {
  const token = (sessionId: string): RevokableToken => ({
    jti: randomUUID(),
    subject: "alice",
    clientId: "demo-app",
    kid: "k1",
    issuedAt: Math.floor(Date.now() / 1000) - 10,
    sessionId,
    sessionVersion: 1,
  });
  const sessionRevoked = (sid: string) =>
    encodeRevocationEntry({
      id: randomUUID(),
      type: "session_revoked",
      at: Date.now(),
      until: Math.floor(Date.now() / 1000) + 600,
      sid,
    });

  it("bootstraps what the bus already holds, then applies what arrives, and gates readiness until then", async () => {
    const bus = createInProcessBus();
    const before = randomUUID();
    const after = randomUUID();
    await bus.append("revocations", [sessionRevoked(before)]);
    const follower = createBusFollower({ bus, stream: "revocations", stalenessBoundMs: 5000, logger: quiet });
    try {
      expect(follower.state.isStale(Date.now())).toBe(true);
      const options = follower.sidecarOptions();
      expect(options.revocation).toBe(follower.state);
      await options.onReady;
      expect(options.readiness()).toEqual([]);
      expect(follower.state.check(token(before))).toBe("session_revoked");
      expect(follower.state.check(token(after))).toBeNull();
      expect(follower.state.isStale(Date.now())).toBe(false);

      await bus.append("revocations", [sessionRevoked(after)]);
      await expect.poll(() => follower.state.check(token(after)), { timeout: 2000 }).toBe("session_revoked");
    } finally {
      await follower.stop();
      await bus.close();
    }
  });

  it("reports not ready once stopped", async () => {
    const bus = createInProcessBus();
    const follower = createBusFollower({ bus, stream: "revocations", stalenessBoundMs: 5000, logger: quiet });
    const options = follower.sidecarOptions();
    await options.onReady;
    await follower.stop();
    expect(options.readiness()).toEqual(["revocation stream not bootstrapped yet"]);
    await bus.close();
  });
});
