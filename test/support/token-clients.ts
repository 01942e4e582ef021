import {
  create,
  type DescMessage,
  type DescService,
  fromBinary,
  type MessageInitShape,
  type MessageShape,
} from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { TokenService } from "../../services/gen/proto/gatehouse/v1/token_service_pb.ts";
import { ErrorInfoSchema } from "../../services/gen/proto/google/rpc/error_details_pb.ts";
import { StatusSchema } from "../../services/gen/proto/google/rpc/status_pb.ts";
import { grpcServiceDefinition } from "../../services/shared/rpc/index.ts";
import { basicAuthorization } from "../../services/token/clients/basic-credentials.ts";
import { adminPortOf } from "./admin-port.ts";

/** A failed gRPC call as tests inspect it: status code, message, and the ErrorInfo reason. */
export interface GrpcFailure {
  code: number;
  message: string;
  reason: string | undefined;
  domain: string | undefined;
  metadata: Record<string, string>;
}

type GrpcCaller<S extends DescService> = {
  [M in keyof S["method"]]: (
    req: MessageInitShape<S["method"][M]["input"]>,
  ) => Promise<MessageShape<S["method"][M]["output"]>>;
};

export function decodeFailure(err: grpc.ServiceError): GrpcFailure {
  const bin = err.metadata?.get("grpc-status-details-bin")[0];
  let reason: string | undefined;
  let domain: string | undefined;
  let metadata: Record<string, string> = {};
  if (bin) {
    const status = fromBinary(StatusSchema, Buffer.isBuffer(bin) ? bin : Buffer.from(bin, "base64"));
    const info = status.details.find((d) => d.typeUrl.endsWith("google.rpc.ErrorInfo"));
    if (info) {
      const decoded = fromBinary(ErrorInfoSchema, info.value);
      reason = decoded.reason;
      domain = decoded.domain;
      metadata = decoded.metadata;
    }
  }
  return { code: err.code, message: err.details, reason, domain, metadata };
}

/** How a test client authenticates: a secret (Basic), or a client assertion (a function: re-read per call). */
export type TestCredentials = { id: string; secret: string } | { assertion: () => string };

/**
 * A plain @grpc/grpc-js client of any Gatehouse service; failures reject with a GrpcFailure.
 * AdminService calls go to the admin plane of the service whose gRPC port is given (see admin-port.ts).
 */
export function grpcServiceClient<S extends DescService>(
  service: S,
  port: number,
  credentials?: TestCredentials,
): GrpcCaller<S> & { close(): void } {
  const Ctor = grpc.makeGenericClientConstructor(grpcServiceDefinition(service), service.name);
  const target = service.typeName === "gatehouse.v1.AdminService" ? adminPortOf(port) : port;
  const client = new Ctor(`127.0.0.1:${target}`, grpc.credentials.createInsecure());
  const calls: Record<string, unknown> = {};
  for (const method of service.methods) {
    calls[method.localName] = (init: object) =>
      new Promise((resolve, reject) => {
        const md = new grpc.Metadata();
        if (credentials && "assertion" in credentials) {
          md.set("x-gatehouse-client-assertion", credentials.assertion());
        } else if (credentials) {
          md.set("authorization", basicAuthorization(credentials.id, credentials.secret));
        }
        const fn = (client as unknown as Record<string, (...args: unknown[]) => void>)[method.localName]!;
        fn.call(
          client,
          create(method.input as DescMessage, init as never),
          md,
          (err: grpc.ServiceError | null, res: unknown) => (err ? reject(decodeFailure(err)) : resolve(res)),
        );
      });
  }
  return { ...(calls as GrpcCaller<S>), close: () => client.close() };
}

/** A plain @grpc/grpc-js client of TokenService, as most internal services would use. */
export function grpcTokenClient(port: number, credentials?: TestCredentials) {
  return grpcServiceClient(TokenService, port, credentials);
}

/** Connect/JSON over HTTP/1.1 with nothing but fetch, as curl users would call it. */
export function connectJsonClient(httpPort: number, credentials?: { id: string; secret: string }) {
  return async (
    method: string,
    body: unknown,
  ): Promise<{ status: number; json: Record<string, unknown> }> => {
    const res = await fetch(`http://127.0.0.1:${httpPort}/gatehouse.v1.TokenService/${method}`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        ...(credentials ? { authorization: basicAuthorization(credentials.id, credentials.secret) } : {}),
      },
      body: JSON.stringify(body),
    });
    return { status: res.status, json: (await res.json()) as Record<string, unknown> };
  };
}

/** The ErrorInfo reason of a Connect/JSON error body. */
export function connectReason(json: Record<string, unknown>): string | undefined {
  const details = json.details as { type: string; debug?: { reason?: string } }[] | undefined;
  return details?.find((d) => d.type === "google.rpc.ErrorInfo")?.debug?.reason;
}
