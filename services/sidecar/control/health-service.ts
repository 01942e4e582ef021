import type * as http2 from "node:http2";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  HealthCheckRequestSchema,
  HealthCheckResponseSchema,
  HealthCheckResponse_ServingStatus as Status,
} from "../../gen/proto/grpc/health/v1/health_pb.ts";
import { GatehouseError } from "../../shared/errors/gatehouse-error.ts";
import {
  failGrpcCall,
  grpcMessageFrame,
  readGrpcRequest,
  type UnaryBytesHandler,
} from "../ext-authz/grpc-unary.ts";

export const HEALTH_CHECK_PATH = "/grpc.health.v1.Health/Check";
export const HEALTH_WATCH_PATH = "/grpc.health.v1.Health/Watch";

export interface HealthServiceOptions {
  /** The services reported one by one; "" (the whole server) is always reported too. */
  services: readonly string[];
  /** Whether this sidecar should get traffic now (its readiness). */
  serving: () => boolean;
  /** How often open Watch streams look for a change. Default 1 s. */
  intervalMs?: number;
}

export interface HealthService {
  /** `Health/Check` as bytes, for serveGrpcUnary. */
  check: UnaryBytesHandler;
  /** `Health/Watch` on a raw HTTP/2 stream: the status now, then each change, until the client or stop() ends it. */
  watch(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void;
  /** Sends watchers their status now rather than at the next interval (e.g. a drain began). */
  notify(): void;
  /** Ends every Watch stream with OK (clients then reconnect elsewhere), so shutdown need not wait for them. */
  stop(): void;
}

interface Watcher {
  readonly stream: http2.ServerHttp2Stream;
  readonly service: string;
  last: Status | undefined;
}

/**
 * `grpc.health.v1.Health` for the control port, whose gRPC is served straight on node:http2 (see
 * ext-authz/grpc-unary.ts), so Kubernetes `grpc:` probes and Envoy's gRPC health checks see the
 * sidecar's readiness: SERVING when `/readyz` would answer 200, NOT_SERVING otherwise (draining,
 * no JWKS yet, revocation state stale with fail mode closed).
 */
export function createHealthService(options: HealthServiceOptions): HealthService {
  const known = new Set(["", ...options.services]);
  const watchers = new Set<Watcher>();
  let timer: NodeJS.Timeout | undefined;

  const statusOf = (service: string): Status =>
    !known.has(service) ? Status.SERVICE_UNKNOWN : options.serving() ? Status.SERVING : Status.NOT_SERVING;
  const encode = (status: Status) =>
    toBinary(HealthCheckResponseSchema, create(HealthCheckResponseSchema, { status }));
  const decode = (bytes: Uint8Array): string => {
    try {
      return fromBinary(HealthCheckRequestSchema, bytes).service;
    } catch (cause) {
      throw new GatehouseError("invalid_request", "not a grpc.health.v1.HealthCheckRequest", { cause });
    }
  };
  const send = (watcher: Watcher) => {
    const status = statusOf(watcher.service);
    if (status === watcher.last || watcher.stream.closed) return;
    watcher.last = status;
    watcher.stream.write(grpcMessageFrame(encode(status)));
  };
  const notify = () => {
    for (const watcher of watchers) send(watcher);
  };

  return {
    check(request) {
      const service = decode(request);
      if (!known.has(service))
        throw new GatehouseError("not_found", `no health status for service "${service}"`);
      return encode(statusOf(service));
    },
    watch(stream, headers) {
      readGrpcRequest(stream, headers, {}, (request) => {
        let service: string;
        try {
          service = decode(request);
        } catch (err) {
          failGrpcCall(stream, err, {});
          return;
        }
        if (stream.closed) return;
        stream.respond(
          { ":status": 200, "content-type": "application/grpc", "grpc-accept-encoding": "identity" },
          { waitForTrailers: true },
        );
        stream.once("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
        const watcher: Watcher = { stream, service, last: undefined };
        watchers.add(watcher);
        send(watcher);
        stream.once("close", () => {
          watchers.delete(watcher);
          if (watchers.size === 0) {
            clearInterval(timer);
            timer = undefined;
          }
        });
        timer ??= setInterval(notify, options.intervalMs ?? 1000);
        timer.unref();
      });
    },
    notify,
    stop() {
      clearInterval(timer);
      timer = undefined;
      for (const watcher of watchers) if (!watcher.stream.closed) watcher.stream.end();
      watchers.clear();
    },
  };
}
