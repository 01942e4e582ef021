import {
  create,
  type DescMessage,
  type DescService,
  type MessageInitShape,
  type MessageShape,
} from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { AdminService } from "../../services/gen/proto/gatehouse/v1/admin_service_pb.ts";
import { grpcServiceDefinition } from "../../services/shared/rpc/index.ts";
import { basicAuthorization } from "../../services/token/clients/basic-credentials.ts";
import { decodeFailure } from "./token-clients.ts";

type GrpcCaller<S extends DescService> = {
  [M in keyof S["method"]]: (
    req: MessageInitShape<S["method"][M]["input"]>,
  ) => Promise<MessageShape<S["method"][M]["output"]>>;
};

/** A plain @grpc/grpc-js client of any Gatehouse service; failures reject with a GrpcFailure. */
export function grpcServiceClient<S extends DescService>(
  service: S,
  port: number,
  credentials?: { id: string; secret: string },
): GrpcCaller<S> & { close(): void } {
  const Ctor = grpc.makeGenericClientConstructor(grpcServiceDefinition(service), service.name);
  const client = new Ctor(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  const calls: Record<string, unknown> = {};
  for (const method of service.methods) {
    calls[method.localName] = (init: object) =>
      new Promise((resolve, reject) => {
        const md = new grpc.Metadata();
        if (credentials) md.set("authorization", basicAuthorization(credentials.id, credentials.secret));
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

/** AdminService over grpc-js, as the CLI and operators' tooling call it. */
export function grpcAdminClient(port: number, credentials?: { id: string; secret: string }) {
  return grpcServiceClient(AdminService, port, credentials);
}
