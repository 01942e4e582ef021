/**
 * The processes bench/sidecar.ts runs beside the sidecar, one role per process so each has its
 * own core time and RSS:
 *
 *   node --import tsx bench/lib/sidecar-peers.ts upstream
 *   node --import tsx bench/lib/sidecar-peers.ts express-authz <jwksUrl> <issuer>
 *   node --import tsx bench/lib/sidecar-peers.ts express-proxy <jwksUrl> <issuer> <upstreamUrl>
 *   node --import tsx bench/lib/sidecar-peers.ts grpcjs-check <jwksUrl> <issuer>
 *
 * Each prints `{"port": N}` on stdout once it listens.
 */
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import * as grpc from "@grpc/grpc-js";
import express from "express";
import { expressjwt, type Request as JwtRequest } from "express-jwt";
import jwksRsa from "jwks-rsa";
import { createLogger } from "../../services/shared/logging/index.ts";
import { createMetricsRegistry } from "../../services/shared/metrics/index.ts";
import { createDecisionMetrics } from "../../services/sidecar/control/decision-metrics.ts";
import { createGuard } from "../../services/sidecar/control/guard.ts";
import { CHECK_PATH, createCheckHandler } from "../../services/sidecar/ext-authz/check.ts";
import { createJwksCache } from "../../services/sidecar/jwks/index.ts";
import { DEFAULT_MAX_PATH_LENGTH } from "../../services/sidecar/policy/canonical-path.ts";
import { defaultPolicy } from "../../services/sidecar/policy/index.ts";
import { createMemoryRevocationState } from "../../services/sidecar/revocation-state/index.ts";
import { createVerifier } from "../../services/sidecar/verifier/index.ts";

const [role, jwksUrl = "", issuer = "", upstreamUrl = ""] = process.argv.slice(2);

function announce(server: { address(): AddressInfo | string | null }): void {
  process.stdout.write(`${JSON.stringify({ port: (server.address() as AddressInfo).port })}\n`);
}

/** The trivial app behind both proxies. */
function upstream(): void {
  const server = http.createServer({ keepAliveTimeout: 65_000 }, (req, res) => {
    req.resume();
    res.writeHead(200, { "content-type": "text/plain", "content-length": "2" });
    res.end("ok");
  });
  server.listen(0, "127.0.0.1", () => announce(server));
}

/** express-jwt + jwks-rsa doing the job of /authz: verify the ES256 token (iss, aud, exp), answer 200 with who. */
function expressApp(): express.Express {
  const app = express();
  app.disable("x-powered-by");
  app.use(
    expressjwt({
      secret: jwksRsa.expressJwtSecret({
        jwksUri: jwksUrl,
        cache: true,
        rateLimit: true,
        jwksRequestsPerMinute: 10,
      }),
      algorithms: ["ES256"],
      issuer,
      audience: "orders",
    }),
  );
  return app;
}

function expressAuthz(): void {
  const app = expressApp();
  app.get("/authz", (req: JwtRequest, res) => {
    res.set({
      "x-gatehouse-subject": String(req.auth?.sub),
      "x-gatehouse-client-id": String(req.auth?.client_id),
    });
    res.status(200).end();
  });
  app.use(errorHandler);
  const server = app.listen(0, "127.0.0.1", () => announce(server));
}

/** The same check in front of the app, proxying with a keep-alive agent (what an express gateway does). */
function expressProxy(): void {
  const target = new URL(upstreamUrl);
  const agent = new http.Agent({ keepAlive: true, maxFreeSockets: 256 });
  const app = expressApp();
  app.use((req: JwtRequest, res) => {
    const headers = { ...req.headers, "x-gatehouse-subject": String(req.auth?.sub) };
    const up = http.request(
      { host: target.hostname, port: target.port, method: req.method, path: req.url, headers, agent },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    up.on("error", () => res.status(502).end());
    req.pipe(up);
  });
  app.use(errorHandler);
  const server = app.listen(0, "127.0.0.1", () => announce(server));
}

function errorHandler(
  err: { status?: number; code?: string },
  _req: express.Request,
  res: express.Response,
  _next: express.NextFunction,
): void {
  res.status(err.status ?? 500).json({ error: err.code ?? "internal" });
}

/** ext_authz Check with the sidecar's own handler, served by grpc-js: the per-call cost we compare against. */
async function grpcjsCheck(): Promise<void> {
  const logger = createLogger({ level: "silent", component: "bench", pretty: false });
  const jwks = createJwksCache({ url: jwksUrl });
  await jwks.ready();
  const revocation = createMemoryRevocationState({ stalenessBoundMs: 3_600_000 });
  revocation.markFresh(Date.now());
  const verifier = createVerifier({
    issuer,
    audiences: ["orders"],
    resolveKey: jwks.keyResolver,
    revocation,
  });
  const metrics = createDecisionMetrics(createMetricsRegistry("bench"), {
    jwks,
    revocation,
    cacheSize: () => verifier.cacheSize,
    revocationSource: "none",
    now: Date.now,
  });
  const policy = defaultPolicy();
  const paths = { maxLength: DEFAULT_MAX_PATH_LENGTH, allowEncodedSlashes: false };
  const guard = createGuard({ verifier, policy: () => policy, metrics, logger, paths });
  const check = createCheckHandler({ guard, forwardToken: false, stripAuthorization: false });
  const raw = (b: Buffer) => b;
  const definition: grpc.ServiceDefinition = {
    check: {
      path: CHECK_PATH,
      requestStream: false,
      responseStream: false,
      requestSerialize: raw,
      requestDeserialize: raw,
      responseSerialize: raw,
      responseDeserialize: raw,
    },
  };
  const server = new grpc.Server({ "grpc.enable_channelz": 0, "grpc.max_concurrent_streams": 1000 });
  server.addService(definition, {
    check(call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) {
      check(call.request).then(
        (bytes) => callback(null, Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)),
        (err: Error) => callback({ code: grpc.status.INTERNAL, details: err.message }),
      );
    },
  });
  server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, port) => {
    if (err) throw err;
    process.stdout.write(`${JSON.stringify({ port })}\n`);
  });
}

switch (role) {
  case "upstream":
    upstream();
    break;
  case "express-authz":
    expressAuthz();
    break;
  case "express-proxy":
    expressProxy();
    break;
  case "grpcjs-check":
    await grpcjsCheck();
    break;
  default:
    console.error(`unknown role ${role}`);
    process.exit(2);
}
