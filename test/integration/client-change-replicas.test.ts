import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ClientRole } from "../../services/gen/proto/gatehouse/v1/admin_service_pb.ts";
import type { RunningTokenService } from "../../services/token/token-service.ts";
import { grpcAdminClient } from "../support/admin-clients.ts";
import { type TestDatabase, useTestDatabase } from "../support/database.ts";
import { type GrpcFailure, grpcTokenClient } from "../support/token-clients.ts";
import { startTokenReplicas } from "../support/token-replicas.ts";

/**
 * Issue 14 item 12 (and issue 20 item 3): a client change made through replica A takes effect on
 * replica B within a second, although B's credential cache would trust what it saw for a minute.
 * Two token services on one schema, as two replicas of one deployment; no Redis.
 */

const WITHIN_MS = 1000;
let tdb: TestDatabase;
let a: RunningTokenService;
let b: RunningTokenService;
let creds: Record<string, { id: string; secret: string }>;

beforeAll(async () => {
  tdb = await useTestDatabase();
  ({ a, b, creds } = await startTokenReplicas(tdb, [
    ["root", ["admin"]],
    ["app", ["issuer", "introspector"]],
  ]));
});
afterAll(async () => {
  await a?.shutdown();
  await b?.shutdown();
  await tdb?.drop();
});

/** What Issue on `service` answers for `credentials`: "ok" or the failure's reason. */
async function issueOn(service: RunningTokenService, credentials: { id: string; secret: string }) {
  const client = grpcTokenClient(service.grpcPort, credentials);
  try {
    await client.issue({ subject: "u1", audience: ["orders"] });
    return "ok";
  } catch (err) {
    return (err as GrpcFailure).reason ?? String((err as GrpcFailure).code);
  } finally {
    client.close();
  }
}

/** Polls until `probe` answers `expected`; the milliseconds it took, or fails after `WITHIN_MS`. */
async function within(probe: () => Promise<string>, expected: string): Promise<number> {
  const started = performance.now();
  let last = "";
  while (performance.now() - started < WITHIN_MS) {
    last = await probe();
    if (last === expected) return performance.now() - started;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`still answering ${last} after ${WITHIN_MS} ms, expected ${expected}`);
}

describe("client changes reach every replica within a second", () => {
  it("a rotated secret, a removed role, a disable and an enable made on A apply on B", async () => {
    const admin = grpcAdminClient(a.grpcPort, creds.root);
    try {
      const old = creds.app!;
      // B has verified and cached the app's credentials.
      expect(await issueOn(b, old)).toBe("ok");

      const rotated = await admin.rotateClientSecret({
        clientId: "app",
        previousSecretOverlap: durationFromMs(0),
      });
      const fresh = { id: "app", secret: rotated.clientSecret };
      await within(() => issueOn(b, old), "invalid_client");
      expect(await issueOn(b, fresh)).toBe("ok");

      await admin.updateClient({
        clientId: "app",
        roles: [ClientRole.INTROSPECTOR],
        updateMask: { paths: ["roles"] },
      });
      await within(() => issueOn(b, fresh), "unauthorized_client");
      await admin.updateClient({
        clientId: "app",
        roles: [ClientRole.ISSUER],
        updateMask: { paths: ["roles"] },
      });
      await within(() => issueOn(b, fresh), "ok");

      await admin.disableClient({ clientId: "app" });
      await within(() => issueOn(b, fresh), "invalid_client");
      // Tried while disabled, so B holds a cached refusal of the current secret: enable must end it.
      expect(await issueOn(b, fresh)).toBe("invalid_client");
      await admin.enableClient({ clientId: "app" });
      await within(() => issueOn(b, fresh), "ok");
      expect(await issueOn(a, fresh)).toBe("ok");
    } finally {
      admin.close();
    }
  }, 30_000);
});
