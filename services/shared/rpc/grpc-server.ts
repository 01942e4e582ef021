import { create, type DescService, fromBinary, type Message, toBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { GatehouseError } from "../errors/gatehouse-error.ts";
import { GrpcCode } from "../errors/status-map.ts";
import type { Logger } from "../logging/index.ts";
import { endRpcSpan, rpcSpan } from "../tracing/rpc-spans.ts";
import type { Tracing } from "../tracing/tracing.ts";
import { GrpcCallContext } from "./call-context.ts";
import { settleFailure } from "./call-failure.ts";
import { toGrpcStatus } from "./error-wire.ts";
import { NO_RPC_METRICS, type RpcMetrics } from "./rpc-metrics.ts";
import { type BoundMethod, boundMethods, type ServiceRegistration } from "./service-handlers.ts";

export interface GrpcServerOptions {
  services: readonly ServiceRegistration[];
  logger: Logger;
  metrics?: RpcMetrics;
  /** Largest request message accepted; bigger ones fail with RESOURCE_EXHAUSTED. Default 64 KiB. */
  maxReceiveMessageBytes?: number;
  /** grpc-js channel options, applied over the defaults below. */
  serverOptions?: grpc.ServerOptions;
  /** A span per call, continuing the caller's `traceparent`; none when omitted. */
  tracing?: Tracing | undefined;
}

/**
 * Production defaults. Channelz is off: it costs bookkeeping on every call. Connections are
 * recycled after 30 min (with a grace period for calls in flight) so clients rebalance across
 * replicas as they scale; idle ones close after 10 min; keepalive pings find dead peers.
 */
const DEFAULT_SERVER_OPTIONS: grpc.ServerOptions = {
  "grpc.max_send_message_length": 4 * 1024 * 1024,
  "grpc.keepalive_time_ms": 60_000,
  "grpc.keepalive_timeout_ms": 20_000,
  "grpc.max_connection_idle_ms": 10 * 60_000,
  "grpc.max_connection_age_ms": 30 * 60_000,
  "grpc.max_connection_age_grace_ms": 30_000,
  "grpc.max_concurrent_streams": 1000,
  "grpc.enable_channelz": 0,
};

/**
 * A grpc-js service definition that encodes with the protobuf-es schemas: the same paths and codecs
 * as any gRPC client or server built from the .proto. Use it for clients
 * (`grpc.makeGenericClientConstructor(grpcServiceDefinition(TokenService), "TokenService")`).
 */
export function grpcServiceDefinition(service: DescService): grpc.ServiceDefinition {
  const definition: Record<string, grpc.MethodDefinition<Message, Message>> = {};
  for (const method of service.methods) {
    definition[method.localName] = {
      path: `/${service.typeName}/${method.name}`,
      originalName: method.name,
      requestStream: method.methodKind === "client_streaming" || method.methodKind === "bidi_streaming",
      responseStream: method.methodKind === "server_streaming" || method.methodKind === "bidi_streaming",
      requestSerialize: (message: Message) => asBuffer(toBinary(method.input, message)),
      requestDeserialize: (bytes: Buffer) => fromBinary(method.input, bytes),
      responseSerialize: (message: Message) => asBuffer(toBinary(method.output, message)),
      responseDeserialize: (bytes: Buffer) => fromBinary(method.output, bytes),
    };
  }
  return definition;
}

/**
 * grpc-js writes its own errors to stderr as `E <text>`, outside our log format. They go through
 * our logger instead, except a failed bind: {@link listenGrpc}'s caller reports that in one line
 * of its own (shared/rpc/listen-failure.ts), so grpc-js's copy would be a second, stray one.
 */
function routeGrpcLogs(logger: Logger): void {
  const line = (message: unknown, ...rest: unknown[]) => [String(message), ...rest.map(String)].join(" ");
  grpc.setLogger({
    error: (message?: unknown, ...rest: unknown[]) => {
      const text = line(message, ...rest);
      if (!text.startsWith("No address added out of total")) logger.warn({ part: "grpc-js" }, text);
    },
    info: (message?: unknown, ...rest: unknown[]) => logger.info({ part: "grpc-js" }, line(message, ...rest)),
    debug: (message?: unknown, ...rest: unknown[]) =>
      logger.debug({ part: "grpc-js" }, line(message, ...rest)),
  });
}

/** A grpc-js server with our services registered; bind it with {@link listenGrpc}. */
export function createGrpcServer(options: GrpcServerOptions): grpc.Server {
  routeGrpcLogs(options.logger);
  const server = new grpc.Server({
    ...DEFAULT_SERVER_OPTIONS,
    "grpc.max_receive_message_length": options.maxReceiveMessageBytes ?? 64 * 1024,
    ...options.serverOptions,
  });
  const metrics = options.metrics ?? NO_RPC_METRICS;
  for (const registration of options.services) {
    const definition: Record<string, grpc.MethodDefinition<unknown, Uint8Array>> = {};
    const implementation: grpc.UntypedServiceImplementation = {};
    for (const bound of boundMethods(registration)) {
      const { method } = bound;
      definition[method.localName] = {
        path: `/${registration.service.typeName}/${method.name}`,
        originalName: method.name,
        requestStream: false,
        responseStream: false,
        // Never throws: grpc-js would answer INTERNAL. The handler turns the failure into invalid_request.
        requestDeserialize: (bytes: Buffer) => {
          try {
            return fromBinary(method.input, bytes);
          } catch (err) {
            return new DecodeFailure(err);
          }
        },
        // The handler encodes (so encoding errors are ours to report); grpc-js gets the bytes.
        responseSerialize: asBuffer,
        // Client half, unused by a server.
        requestSerialize: (message: unknown) => asBuffer(toBinary(method.input, message as Message)),
        responseDeserialize: (bytes: Buffer) => bytes,
      };
      implementation[method.localName] = unaryCall(
        registration.service.typeName,
        bound,
        options.logger,
        metrics,
        options.tracing,
      );
    }
    server.addService(definition, implementation);
  }
  return server;
}

/** Binds `host:port` (port 0: any free port) and resolves with the bound port. */
export function listenGrpc(
  server: grpc.Server,
  host: string,
  port: number,
  credentials: grpc.ServerCredentials = grpc.ServerCredentials.createInsecure(),
): Promise<number> {
  const address = host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
  return new Promise((resolve, reject) => {
    server.bindAsync(address, credentials, (err, bound) => (err ? reject(err) : resolve(bound)));
  });
}

/** What requestDeserialize returns for bytes that are not a valid message (bad wire data, bad UTF-8). */
class DecodeFailure {
  constructor(readonly error: unknown) {}
}

/**
 * The per-call path, kept lean (grpc-js itself costs ~0.1 ms a call): no AbortController, no Headers
 * copy, metadata and peer read only if the handler asks, one metrics observation.
 */
function unaryCall(
  serviceName: string,
  { method, handler }: BoundMethod,
  logger: Logger,
  metrics: RpcMetrics,
  tracing: Tracing | undefined,
): grpc.handleUnaryCall<unknown, Uint8Array> {
  const methodName = method.name;
  const output = method.output;
  return (call, callback) => {
    const started = performance.now();
    const ctx = new GrpcCallContext(serviceName, methodName, call);
    ctx.span = rpcSpan(tracing, serviceName, methodName, "grpc", (name) => ctx.header(name));
    const fail = (thrown: unknown): void => {
      const err = settleFailure(thrown, ctx, logger);
      const status = toGrpcStatus(err, ctx.requestId);
      callback(status);
      metrics.record(serviceName, methodName, "grpc", status.code, elapsed(started), err.code);
      endRpcSpan(ctx.span, status.code, err.code);
    };
    const request = call.request;
    if (request instanceof DecodeFailure) {
      fail(
        new GatehouseError("invalid_request", "the request message could not be decoded", {
          cause: request.error,
        }),
      );
      return;
    }
    let pending: Promise<unknown>;
    try {
      pending = handler(request as Message, ctx);
    } catch (err) {
      pending = Promise.reject(err);
    }
    pending.then((init) => {
      let bytes: Uint8Array;
      try {
        bytes = toBinary(output, create(output, init as Parameters<typeof create>[1]));
      } catch (err) {
        fail(err);
        return;
      }
      callback(null, bytes);
      const code = call.cancelled ? GrpcCode.CANCELLED : GrpcCode.OK;
      metrics.record(serviceName, methodName, "grpc", code, elapsed(started));
      endRpcSpan(ctx.span, code);
    }, fail);
  };
}

function elapsed(started: number): number {
  return (performance.now() - started) / 1000;
}

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
