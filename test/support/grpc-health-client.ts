import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { protoPath as healthProtoPath } from "grpc-health-check";

export type HealthClient = grpc.Client & {
  check(req: { service: string }, cb: (err: grpc.ServiceError | null, res: { status: string }) => void): void;
  watch(req: { service: string }): grpc.ClientReadableStream<{ status: string }>;
  list(
    req: Record<string, never>,
    cb: (err: grpc.ServiceError | null, res: { statuses: Record<string, { status: string }> }) => void,
  ): void;
};

/** A grpc.health.v1 client from grpc-health-check's own proto, loaded the way any grpc-js user would. */
export function healthClient(port: number): HealthClient {
  const definition = protoLoader.loadSync(healthProtoPath, { keepCase: true, enums: String, defaults: true });
  const loaded = grpc.loadPackageDefinition(definition) as unknown as {
    grpc: {
      health: { v1: { Health: new (target: string, creds: grpc.ChannelCredentials) => HealthClient } };
    };
  };
  return new loaded.grpc.health.v1.Health(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
}

/** Check's status name for `service` ("" is the whole server). */
export function check(client: HealthClient, service: string): Promise<string> {
  return new Promise((resolve, reject) =>
    client.check({ service }, (err, res) => (err ? reject(err) : resolve(res.status))),
  );
}

/** List's status names by service. */
export function list(client: HealthClient): Promise<Record<string, string>> {
  return new Promise((resolve, reject) =>
    client.list({}, (err, res) =>
      err
        ? reject(err)
        : resolve(Object.fromEntries(Object.entries(res.statuses).map(([name, s]) => [name, s.status]))),
    ),
  );
}
