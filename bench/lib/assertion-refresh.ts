/**
 * Refresh authenticated by a client assertion (P10: assertion-authenticated Refresh ÷ Basic ≥ 0.8):
 * a fake cluster issuer in this process (ES256 key, OpenID discovery and JWKS on loopback) is made
 * a trusted issuer of the service, a client `bench-sa` is registered with no secret for its service
 * account, and separate driver processes refresh `concurrency` sessions over native gRPC, each call
 * carrying the same projected-token-style assertion in `x-gatehouse-client-assertion`, as a pod
 * reusing its kubelet token would. Compared with the RPC Refresh (Basic) run of the same bench.
 *
 * Self-contained: bench/token-service.ts calls {@link startAssertionBench} before the service
 * starts (for its environment and client row), then {@link measureAssertionRefresh} after its RPC
 * Refresh run, and reports {@link assertionRefreshRows}.
 */
import { randomUUID } from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import { create } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { exportJWK, generateKeyPair, SignJWT } from "jose";
import type { PrismaClient } from "../../services/gen/prisma/client.ts";
import {
  IssueRequestSchema,
  RefreshRequestSchema,
  TokenService,
} from "../../services/gen/proto/gatehouse/v1/token_service_pb.ts";
import { grpcServiceDefinition } from "../../services/shared/rpc/index.ts";
import { CLIENT_ASSERTION_HEADER } from "../../services/token/clients/client-assertion-header.ts";
import { type BenchRow, row } from "./bench-results.ts";
import { type DriverResult, type DriversResult, runForkedDrivers } from "./forked-drivers.ts";

const here = fileURLToPath(import.meta.url);
const SUBJECT = "system:serviceaccount:bench:refresher";
const ASSERTION_CLIENT_ID = "bench-sa";

interface DriverTask {
  port: number;
  assertion: string;
  slots: number;
  durationMs: number;
}

export interface AssertionBench {
  /** Environment for the token service: the fake issuer as its one trusted issuer. */
  env: Record<string, string>;
  /** Registers `bench-sa` (no secret, federated to the fake issuer's service account). */
  register(prisma: PrismaClient): Promise<void>;
  /** A service-account token for `audience`, valid 1 h. */
  mint(audience: string): Promise<string>;
  close(): Promise<void>;
}

export async function startAssertionBench(): Promise<AssertionBench> {
  const { privateKey, publicKey } = await generateKeyPair("ES256");
  const jwk = { ...(await exportJWK(publicKey)), kid: "bench-1", use: "sig", alg: "ES256" };
  let issuer = "";
  const server = http.createServer((req, res) => {
    const body =
      req.url === "/.well-known/openid-configuration"
        ? { issuer, jwks_uri: `${issuer}/openid/v1/jwks` }
        : req.url === "/openid/v1/jwks"
          ? { keys: [jwk] }
          : undefined;
    if (body === undefined) res.writeHead(404).end();
    else res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(body));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    env: { GATEHOUSE_TRUSTED_ISSUERS: JSON.stringify([{ issuer }]) },
    async register(prisma) {
      await prisma.client.create({
        data: {
          id: ASSERTION_CLIENT_ID,
          name: ASSERTION_CLIENT_ID,
          secretHash: null,
          federatedIssuer: issuer,
          federatedSubject: SUBJECT,
          roles: ["issuer"],
          allowedAudiences: ["orders"],
          allowedScopes: ["orders:read"],
        },
      });
    },
    mint(audience) {
      const now = Math.floor(Date.now() / 1000);
      return new SignJWT({ sub: SUBJECT })
        .setProtectedHeader({ alg: "ES256", kid: jwk.kid })
        .setIssuer(issuer)
        .setAudience(audience)
        .setIssuedAt(now)
        .setNotBefore(now)
        .setExpirationTime(now + 3600)
        .sign(privateKey);
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

async function runDriver(task: DriverTask): Promise<DriverResult> {
  const Ctor = grpc.makeGenericClientConstructor(grpcServiceDefinition(TokenService), "TokenService");
  const channels = [0, 1].map(
    () =>
      new Ctor(`127.0.0.1:${task.port}`, grpc.credentials.createInsecure(), {
        "grpc.use_local_subchannel_pool": 1,
      }),
  );
  const md = new grpc.Metadata();
  md.set(CLIENT_ASSERTION_HEADER, task.assertion);
  const call = (slot: number, method: "issue" | "refresh", req: unknown) =>
    new Promise<{ refreshToken: string }>((resolve, reject) =>
      (channels[slot % 2] as unknown as Record<string, (...a: unknown[]) => void>)[method]!(
        req,
        md,
        (err: grpc.ServiceError | null, res: { refreshToken: string }) => (err ? reject(err) : resolve(res)),
      ),
    );
  const tokens: string[] = [];
  for (let s = 0; s < task.slots; s++) {
    const issued = await call(
      s,
      "issue",
      create(IssueRequestSchema, {
        subject: `sa-bench-${randomUUID()}`,
        audience: ["orders"],
        scopes: ["orders:read"],
      }),
    );
    tokens[s] = issued.refreshToken;
  }
  const latencies: number[] = [];
  const errors: Record<string, number> = {};
  let calls = 0;
  const end = performance.now() + task.durationMs;
  await Promise.all(
    Array.from({ length: task.slots }, async (_, s) => {
      while (performance.now() < end) {
        const t0 = performance.now();
        try {
          tokens[s] = (
            await call(s, "refresh", create(RefreshRequestSchema, { refreshToken: tokens[s]! }))
          ).refreshToken;
          calls++;
          latencies.push(performance.now() - t0);
        } catch (err) {
          const code = String((err as grpc.ServiceError).code ?? "unknown");
          errors[code] = (errors[code] ?? 0) + 1;
        }
      }
    }),
  );
  for (const c of channels) c.close();
  return { calls, errors, latenciesMs: latencies };
}

if (process.argv[2] === "--assertion-driver") {
  process.once("message", async (task: DriverTask) => {
    const result = await runDriver(task);
    process.send!(result, () => process.exit(0));
  });
}

/** Refreshes per second over gRPC with an assertion as the caller's credential. */
export async function measureAssertionRefresh(options: {
  grpcPort: number;
  assertion: string;
  concurrency: number;
  drivers: number;
  durationMs: number;
}): Promise<DriversResult> {
  return runForkedDrivers({
    file: here,
    role: "--assertion-driver",
    drivers: options.drivers,
    concurrency: options.concurrency,
    durationMs: options.durationMs,
    taskFor: (slots): DriverTask => ({
      port: options.grpcPort,
      assertion: options.assertion,
      slots,
      durationMs: options.durationMs,
    }),
  });
}

/** The rows: assertion-authenticated Refresh against Basic-authenticated Refresh of the same run. */
export function assertionRefreshRows(
  assertion: DriversResult,
  basicRefresh: { perSecond: number; p99: number },
): BenchRow[] {
  return [
    row("assertion_refresh_per_s", assertion.perSecond, "calls/s", basicRefresh.perSecond),
    row("assertion_refresh_p50_ms", assertion.p50, "ms"),
    row("assertion_refresh_p99_ms", assertion.p99, "ms", basicRefresh.p99),
  ];
}
