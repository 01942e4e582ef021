import type * as http2 from "node:http2";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  HealthCheckRequestSchema,
  HealthCheckResponseSchema,
  HealthListRequestSchema,
  HealthListResponseSchema,
  HealthCheckResponse_ServingStatus as Status,
} from "../../gen/proto/grpc/health/v1/health_pb.ts";
import { GatehouseError } from "../errors/gatehouse-error.ts";
import {
  type GrpcStatus,
  type GrpcStreamHandler,
  grpcMessageFrame,
  REQUEST_MESSAGE_TIMEOUT_MS,
  readGrpcRequest,
  requestTimeout,
  respondGrpcStatus,
  serveGrpcUnary,
  startGrpcResponse,
} from "./grpc-wire.ts";

export interface HealthServiceOptions {
  /** The services reported one by one; "" (the whole server) is always reported too. */
  services: readonly string[];
  /** Whether this server should get traffic now (its readiness). */
  serving: () => boolean;
  /** How often open Watch streams look for a change `notify()` was not told of. Default 1 s. */
  intervalMs?: number;
}

export interface HealthService {
  /**
   * Check, List and Watch by path, for a server that routes HTTP/2 streams by `:path`. A request
   * message that has not arrived within `requestTimeoutMs` ends its call with `request_timeout`.
   */
  routes(
    statusOf: (thrown: unknown) => GrpcStatus,
    requestTimeoutMs?: number,
  ): Map<string, GrpcStreamHandler>;
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

const PREFIX = "/grpc.health.v1.Health/";

/**
 * `grpc.health.v1.Health` (Check, Watch, List) on raw HTTP/2 streams (see grpc-wire.ts), as
 * Kubernetes `grpc:` probes, Envoy's gRPC health checks and gRPC load balancers ask it: SERVING
 * when `serving()` says so, NOT_SERVING otherwise, SERVICE_UNKNOWN to a Watch of a name it does not
 * report (Check answers NOT_FOUND, as the protocol asks).
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

  const check = (request: Uint8Array): Uint8Array => {
    const service = decode(request);
    if (!known.has(service))
      throw new GatehouseError("not_found", `no health status for service "${service}"`);
    return encode(statusOf(service));
  };
  const list = (request: Uint8Array): Uint8Array => {
    try {
      fromBinary(HealthListRequestSchema, request);
    } catch (cause) {
      throw new GatehouseError("invalid_request", "not a grpc.health.v1.HealthListRequest", { cause });
    }
    const statuses = Object.fromEntries([...known].map((name) => [name, { status: statusOf(name) }]));
    return toBinary(HealthListResponseSchema, create(HealthListResponseSchema, { statuses }));
  };
  const watch = (
    stream: http2.ServerHttp2Stream,
    headers: http2.IncomingHttpHeaders,
    failed: (thrown: unknown) => GrpcStatus,
    timeoutMs: number,
  ) => {
    const timeout = requestTimeout(timeoutMs, failed);
    readGrpcRequest(
      stream,
      headers,
      4096,
      (request) => {
        let service: string;
        try {
          service = decode(request);
        } catch (err) {
          respondGrpcStatus(stream, failed(err));
          return;
        }
        if (stream.closed) return;
        startGrpcResponse(stream);
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
      },
      undefined,
      timeout,
    );
  };

  return {
    routes(failed, timeoutMs = REQUEST_MESSAGE_TIMEOUT_MS) {
      return new Map<string, GrpcStreamHandler>([
        [
          `${PREFIX}Check`,
          (stream, headers) => serveGrpcUnary(stream, headers, check, failed, 4096, timeoutMs),
        ],
        [
          `${PREFIX}List`,
          (stream, headers) => serveGrpcUnary(stream, headers, list, failed, 4096, timeoutMs),
        ],
        [`${PREFIX}Watch`, (stream, headers) => watch(stream, headers, failed, timeoutMs)],
      ]);
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
