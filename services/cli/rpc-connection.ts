import { readFileSync } from "node:fs";
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
import { CLIENT_ASSERTION_HEADER } from "../token/clients/client-assertion-header.ts";
import { UsageError } from "./command.ts";

/** Flags every command that talks to the token service accepts. */
export const CONNECTION_FLAGS = {
  server: { type: "string" },
  "client-id": { type: "string" },
  "client-secret": { type: "string" },
  "assertion-file": { type: "string" },
  tls: { type: "boolean" },
  "tls-ca": { type: "string" },
} as const;

export const CONNECTION_USAGE = `Connection (every command that calls the token service):
  --server HOST:PORT      where to call. AdminService commands (clients, keys, audit): the admin
                          plane (default GATEHOUSE_ADMIN_SERVER or 127.0.0.1:7490); TokenService
                          commands (sessions, token inspect --check): the gRPC port (default
                          GATEHOUSE_SERVER or 127.0.0.1:7400)
  --tls                   use TLS (system trust store) instead of plaintext h2c
  --tls-ca FILE           use TLS and trust the CA certificate(s) in FILE (PEM), e.g. a private
                          or mesh CA, instead of the system store (default GATEHOUSE_TLS_CA)
  --client-id ID          caller's client id (default GATEHOUSE_CLIENT_ID)
  --client-secret SECRET  caller's secret (default GATEHOUSE_CLIENT_SECRET; prefer the variable:
                          flags show up in process listings)
  --assertion-file PATH   authenticate with the client assertion (JWT) in PATH instead of a secret,
                          e.g. a projected Kubernetes service-account token; read again for every
                          call, so a token the kubelet rotated is used (default
                          GATEHOUSE_ASSERTION_FILE)`;

/** Where each service is served by default, and the variable that says otherwise. */
const PLANES = {
  admin: { env: "GATEHOUSE_ADMIN_SERVER", server: "127.0.0.1:7490", port: "admin port" },
  token: { env: "GATEHOUSE_SERVER", server: "127.0.0.1:7400", port: "gRPC port" },
} as const;
const ADMIN_SERVICE = "gatehouse.v1.AdminService";
const DEADLINE_MS = 30_000;

export interface ConnectionFlags {
  server?: string | undefined;
  "client-id"?: string | undefined;
  "client-secret"?: string | undefined;
  "assertion-file"?: string | undefined;
  tls?: boolean | undefined;
  "tls-ca"?: string | undefined;
}

/** How the CLI authenticates: a client id and secret, or an assertion read from a file per call. */
type CallerCredentials =
  | { kind: "secret"; clientId: string; clientSecret: string }
  | { kind: "assertion"; file: string };

export interface RpcConnection<S extends DescService> {
  call<M extends keyof S["method"] & string>(
    method: M,
    req: MessageInitShape<S["method"][M]["input"]>,
  ): Promise<MessageShape<S["method"][M]["output"]>>;
  close(): void;
}

/**
 * Credentials and address from flags or the environment; missing credentials are a usage error.
 * AdminService is on the admin plane (GATEHOUSE_ADMIN_LISTEN), everything else on the gRPC port.
 */
export function connectionTarget(flags: ConnectionFlags, service?: DescService) {
  const plane = PLANES[service?.typeName === ADMIN_SERVICE ? "admin" : "token"];
  const server = flags.server ?? process.env[plane.env] ?? plane.server;
  if (!/^[^\s/]+:\d{1,5}$/.test(server)) throw new UsageError(`--server must be host:port, got "${server}"`);
  const tlsCa = flags["tls-ca"] ?? process.env.GATEHOUSE_TLS_CA;
  const tls =
    flags.tls === true || (tlsCa !== undefined && tlsCa !== "") ? { ca: tlsCa || undefined } : undefined;
  const assertionFile = flags["assertion-file"] ?? process.env.GATEHOUSE_ASSERTION_FILE;
  const clientSecret = flags["client-secret"] ?? process.env.GATEHOUSE_CLIENT_SECRET;
  if (assertionFile) {
    if (flags["client-secret"] !== undefined) {
      throw new UsageError("give --assertion-file or --client-secret, not both");
    }
    const credentials: CallerCredentials = { kind: "assertion", file: assertionFile };
    return { server, plane, tls, credentials };
  }
  const clientId = flags["client-id"] ?? process.env.GATEHOUSE_CLIENT_ID;
  if (!clientId || !clientSecret) {
    throw new UsageError(
      "credentials required: set GATEHOUSE_CLIENT_ID and GATEHOUSE_CLIENT_SECRET (or --client-id/--client-secret), or GATEHOUSE_ASSERTION_FILE (--assertion-file)",
    );
  }
  const credentials: CallerCredentials = { kind: "secret", clientId, clientSecret };
  return { server, plane, tls, credentials };
}

/** TLS trusting the system store, or only the CA certificates in `ca` (PEM) when given. */
function channelCredentials(tls: { ca: string | undefined } | undefined): grpc.ChannelCredentials {
  if (tls === undefined) return grpc.credentials.createInsecure();
  if (tls.ca === undefined) return grpc.credentials.createSsl();
  let pem: Buffer;
  try {
    pem = readFileSync(tls.ca);
  } catch (err) {
    throw new UsageError(`--tls-ca: cannot read ${tls.ca}: ${(err as Error).message}`);
  }
  if (!pem.includes("-----BEGIN CERTIFICATE-----")) {
    throw new UsageError(`--tls-ca: ${tls.ca} holds no PEM certificate`);
  }
  return grpc.credentials.createSsl(pem);
}

/** The metadata that authenticates one call: the assertion file is read now, as the kubelet rewrites it. */
function authenticationMetadata(credentials: CallerCredentials): [string, string] {
  if (credentials.kind === "secret") {
    return ["authorization", basicAuthorization(credentials.clientId, credentials.clientSecret)];
  }
  let assertion: string;
  try {
    assertion = readFileSync(credentials.file, "utf8").trim();
  } catch (err) {
    throw new UsageError(`--assertion-file: cannot read ${credentials.file}: ${(err as Error).message}`);
  }
  if (assertion === "") throw new UsageError(`--assertion-file: ${credentials.file} is empty`);
  return [CLIENT_ASSERTION_HEADER, assertion];
}

/** A failed call as the CLI reports it: the Gatehouse reason when the server sent one. */
function failure(err: grpc.ServiceError, server: string, plane: (typeof PLANES)[keyof typeof PLANES]): Error {
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
      `cannot reach the token service at ${server} (${unreachableDetail(err.details)}): start it, or point ${plane.env} (--server) at its ${plane.port}`,
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

/** A grpc-js client of one Gatehouse service, authenticating every call (Basic or an assertion). */
function connect<S extends DescService>(service: S, flags: ConnectionFlags): RpcConnection<S> {
  const target = connectionTarget(flags, service);
  const Ctor = grpc.makeGenericClientConstructor(clientDefinition(service), service.name);
  const client = new Ctor(target.server, channelCredentials(target.tls));
  return {
    call(method, req) {
      const desc = service.method[method] as { input: DescMessage; localName: string };
      return new Promise((resolve, reject) => {
        const md = new grpc.Metadata();
        md.set(...authenticationMetadata(target.credentials));
        const fn = (client as unknown as Record<string, (...args: unknown[]) => void>)[desc.localName]!;
        fn.call(
          client,
          create(desc.input, req as never),
          md,
          { deadline: Date.now() + DEADLINE_MS },
          (err: grpc.ServiceError | null, res: never) =>
            err ? reject(failure(err, target.server, target.plane)) : resolve(res),
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
