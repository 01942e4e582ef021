import {
  create,
  type DescMessage,
  type DescService,
  fromBinary,
  type Message,
  type MessageInitShape,
  type MessageShape,
  toBinary,
} from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { ErrorInfoSchema } from "../gen/proto/google/rpc/error_details_pb.ts";
import { StatusSchema } from "../gen/proto/google/rpc/status_pb.ts";
import { GatehouseError } from "../shared/errors/gatehouse-error.ts";
import { basicAuthorization } from "../token/clients/basic-credentials.ts";
import { UsageError } from "./command.ts";

/** Flags every command that talks to the token service accepts. */
export const CONNECTION_FLAGS = {
  server: { type: "string" },
  "client-id": { type: "string" },
  "client-secret": { type: "string" },
  tls: { type: "boolean" },
} as const;

export const CONNECTION_USAGE = `Connection (every command that calls the token service):
  --server HOST:PORT      token service gRPC address (default GATEHOUSE_SERVER or 127.0.0.1:7400)
  --tls                   use TLS (system trust store) instead of plaintext h2c
  --client-id ID          caller's client id (default GATEHOUSE_CLIENT_ID)
  --client-secret SECRET  caller's secret (default GATEHOUSE_CLIENT_SECRET; prefer the variable:
                          flags show up in process listings)`;

const DEFAULT_SERVER = "127.0.0.1:7400";
const DEADLINE_MS = 30_000;

export interface ConnectionFlags {
  server?: string | undefined;
  "client-id"?: string | undefined;
  "client-secret"?: string | undefined;
  tls?: boolean | undefined;
}

export interface RpcConnection<S extends DescService> {
  call<M extends keyof S["method"] & string>(
    method: M,
    req: MessageInitShape<S["method"][M]["input"]>,
  ): Promise<MessageShape<S["method"][M]["output"]>>;
  close(): void;
}

/** Credentials and address from flags or the environment; missing credentials are a usage error. */
export function connectionTarget(flags: ConnectionFlags) {
  const server = flags.server ?? process.env.GATEHOUSE_SERVER ?? DEFAULT_SERVER;
  if (!/^[^\s/]+:\d{1,5}$/.test(server)) throw new UsageError(`--server must be host:port, got "${server}"`);
  const clientId = flags["client-id"] ?? process.env.GATEHOUSE_CLIENT_ID;
  const clientSecret = flags["client-secret"] ?? process.env.GATEHOUSE_CLIENT_SECRET;
  if (!clientId || !clientSecret) {
    throw new UsageError(
      "credentials required: set GATEHOUSE_CLIENT_ID and GATEHOUSE_CLIENT_SECRET (or --client-id/--client-secret)",
    );
  }
  return { server, clientId, clientSecret, tls: flags.tls === true };
}

/** A failed call as the CLI reports it: the Gatehouse reason when the server sent one. */
function failure(err: grpc.ServiceError, server: string): Error {
  const bin = err.metadata?.get("grpc-status-details-bin")[0];
  if (bin) {
    const status = fromBinary(StatusSchema, Buffer.isBuffer(bin) ? bin : Buffer.from(bin, "base64"));
    const info = status.details.find((d) => d.typeUrl.endsWith("google.rpc.ErrorInfo"));
    if (info) {
      const decoded = fromBinary(ErrorInfoSchema, info.value);
      return GatehouseError.fromReason(
        decoded.reason,
        `${err.details} (${decoded.reason})`,
        decoded.metadata,
      );
    }
  }
  if (err.code === grpc.status.UNAVAILABLE || err.code === grpc.status.DEADLINE_EXCEEDED) {
    return new GatehouseError(
      "unavailable",
      `cannot reach the token service at ${server} (${unreachableDetail(err.details)}): start it, or point GATEHOUSE_SERVER (--server) at its gRPC port`,
    );
  }
  return new Error(err.details || err.message);
}

/**
 * grpc-js's wording without its scaffolding: "No connection established. Last error: Error: connect
 * ECONNREFUSED 127.0.0.1:1. Resolution note: " (the note is empty for a plain address) becomes
 * "connect ECONNREFUSED 127.0.0.1:1".
 */
export function unreachableDetail(details: string): string {
  const last = details.match(/Last error: (?:\w*Error: )?(.*?)\.?(?: Resolution note: (.*))?$/);
  if (!last) return details.replace(/\.? Resolution note: $/, "");
  const note = last[2]?.trim();
  return note ? `${last[1]}; ${note}` : last[1]!;
}

/**
 * grpc-js paths and protobuf-es codecs for a service's unary methods: the client half of
 * `grpcServiceDefinition` in services/shared/rpc, without loading the server stack (start-up time
 * is most of what a CLI invocation costs).
 */
function clientDefinition(service: DescService): grpc.ServiceDefinition {
  const definition: Record<string, grpc.MethodDefinition<Message, Message>> = {};
  for (const method of service.methods) {
    definition[method.localName] = {
      path: `/${service.typeName}/${method.name}`,
      originalName: method.name,
      requestStream: false,
      responseStream: false,
      requestSerialize: (message: Message) => Buffer.from(toBinary(method.input, message)),
      requestDeserialize: (bytes: Buffer) => fromBinary(method.input, bytes),
      responseSerialize: (message: Message) => Buffer.from(toBinary(method.output, message)),
      responseDeserialize: (bytes: Buffer) => fromBinary(method.output, bytes),
    };
  }
  return definition;
}

/** A grpc-js client of one Gatehouse service, authenticating every call with Basic credentials. */
export function connect<S extends DescService>(service: S, flags: ConnectionFlags): RpcConnection<S> {
  const target = connectionTarget(flags);
  const Ctor = grpc.makeGenericClientConstructor(clientDefinition(service), service.name);
  const client = new Ctor(
    target.server,
    target.tls ? grpc.credentials.createSsl() : grpc.credentials.createInsecure(),
  );
  const authorization = basicAuthorization(target.clientId, target.clientSecret);
  return {
    call(method, req) {
      const desc = service.method[method] as { input: DescMessage; localName: string };
      return new Promise((resolve, reject) => {
        const md = new grpc.Metadata();
        md.set("authorization", authorization);
        const fn = (client as unknown as Record<string, (...args: unknown[]) => void>)[desc.localName]!;
        fn.call(
          client,
          create(desc.input, req as never),
          md,
          { deadline: Date.now() + DEADLINE_MS },
          (err: grpc.ServiceError | null, res: never) =>
            err ? reject(failure(err, target.server)) : resolve(res),
        );
      });
    },
    close: () => client.close(),
  };
}

/** Runs `fn` with a connection and closes it however `fn` ends. */
export async function withConnection<S extends DescService, T>(
  service: S,
  flags: ConnectionFlags,
  fn: (connection: RpcConnection<S>) => Promise<T>,
): Promise<T> {
  const connection = connect(service, flags);
  try {
    return await fn(connection);
  } finally {
    connection.close();
  }
}
