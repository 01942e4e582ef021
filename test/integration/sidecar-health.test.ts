import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createMemoryRevocationState } from "../../services/sidecar/revocation-state/memory-revocation-state.ts";
import type { RunningSidecar } from "../../services/sidecar/sidecar.ts";
import { type TestDatabase, useTestDatabase } from "../support/database.ts";
import { check, healthClient, list } from "../support/grpc-health-client.ts";
import {
  removePolicies,
  startTestSidecar,
  startTestTokenService,
  type TestTokenService,
} from "../support/sidecar-fixtures.ts";
import { testClock } from "../support/token-fixtures.ts";

/**
 * grpc.health.v1.Health on the sidecar's control port (:7402), through grpc-js with
 * grpc-health-check's own proto: the status follows readiness (a stale revocation state with fail
 * mode closed, a drain), for Check and for Watch.
 */

const STALENESS_MS = 10_000;
const AUTHORIZATION = "envoy.service.auth.v3.Authorization";
let tdb: TestDatabase;
let ts: TestTokenService;
const clock = testClock(Date.now());
const state = createMemoryRevocationState({ stalenessBoundMs: STALENESS_MS });
let sidecar: RunningSidecar;

beforeAll(async () => {
  tdb = await useTestDatabase();
  ts = await startTestTokenService(tdb);
  state.markFresh(clock.now());
  sidecar = await startTestSidecar(
    { GATEHOUSE_TOKEN_SERVICE_URL: ts.url, GATEHOUSE_UPSTREAM: "http://127.0.0.1:9" },
    { revocation: state, now: clock.now },
  );
});
afterAll(async () => {
  await sidecar?.shutdown(100);
  await ts?.service.shutdown();
  await tdb?.drop();
  removePolicies();
});

describe("grpc.health.v1.Health on the sidecar's control port", () => {
  it("answers Check and List for the server and for ext_authz; NOT_FOUND for other names", async () => {
    const client = healthClient(sidecar.controlPort);
    expect(await check(client, "")).toBe("SERVING");
    expect(await check(client, AUTHORIZATION)).toBe("SERVING");
    expect(await list(client)).toEqual({ "": "SERVING", [AUTHORIZATION]: "SERVING" });
    await expect(check(client, "gatehouse.v1.TokenService")).rejects.toMatchObject({
      code: grpc.status.NOT_FOUND,
    });
    client.close();
  });

  it("is NOT_SERVING while the revocation state is stale and fails closed, for Check and Watch", async () => {
    const client = healthClient(sidecar.controlPort);
    const seen: string[] = [];
    const watch = client.watch({ service: AUTHORIZATION });
    watch.on("data", (res: { status: string }) => seen.push(res.status));
    watch.on("error", () => {});
    await expect.poll(() => seen.length === 1, { timeout: 5000 }).toBeTruthy();
    clock.advance(STALENESS_MS + 1);
    expect(await check(client, "")).toBe("NOT_SERVING");
    expect(await list(client)).toEqual({ "": "NOT_SERVING", [AUTHORIZATION]: "NOT_SERVING" });
    expect((await fetch(`http://127.0.0.1:${sidecar.controlPort}/readyz`)).status).toBe(503);
    await expect.poll(() => seen.length === 2, { timeout: 5000 }).toBeTruthy();
    state.markFresh(clock.now());
    expect(await check(client, AUTHORIZATION)).toBe("SERVING");
    await expect.poll(() => seen.length === 3, { timeout: 5000 }).toBeTruthy();
    expect(seen).toEqual(["SERVING", "NOT_SERVING", "SERVING"]);
    watch.cancel();
    client.close();
  });

  it("Watch of an unknown service says SERVICE_UNKNOWN and stays open", async () => {
    const client = healthClient(sidecar.controlPort);
    const seen: string[] = [];
    const watch = client.watch({ service: "no.such.Service" });
    watch.on("data", (res: { status: string }) => seen.push(res.status));
    watch.on("error", () => {});
    await expect.poll(() => seen.length === 1, { timeout: 5000 }).toBeTruthy();
    expect(seen).toEqual(["SERVICE_UNKNOWN"]);
    watch.cancel();
    client.close();
  });

  it("Watch sees NOT_SERVING as soon as a drain starts, then the stream ends with OK", async () => {
    const draining = await startTestSidecar({
      GATEHOUSE_TOKEN_SERVICE_URL: ts.url,
      GATEHOUSE_UPSTREAM: "http://127.0.0.1:9",
    });
    const client = healthClient(draining.controlPort);
    const seen: string[] = [];
    const watch = client.watch({ service: "" });
    watch.on("data", (res: { status: string }) => seen.push(res.status));
    const ended = new Promise<number>((resolve) => {
      watch.on("status", (status: grpc.StatusObject) => resolve(status.code));
    });
    await expect.poll(() => seen.length === 1, { timeout: 5000 }).toBeTruthy();
    const stopped = draining.shutdown(2000);
    expect(await ended).toBe(grpc.status.OK);
    await stopped;
    expect(seen).toEqual(["SERVING", "NOT_SERVING"]);
    client.close();
  });
});
