// gRPC server reflection on raw HTTP/2 streams (grpcReflectionRoutes), v1 and v1alpha, asked by a
// stock client: grpc-js with @grpc/reflection's own .proto files loaded by proto-loader, over one
// bidi stream per test. Undecodable requests and a flood of requests are sent as exact bytes with a
// bare node:http2 client.
import * as http2 from "node:http2";
import { createRequire } from "node:module";
import type { AddressInfo } from "node:net";
import { dirname, join } from "node:path";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TokenService } from "../../services/gen/proto/gatehouse/v1/token_service_pb.ts";
import { Health } from "../../services/gen/proto/grpc/health/v1/health_pb.ts";
import {
  ServerReflectionRequestSchema,
  ServerReflectionResponseSchema,
} from "../../services/gen/proto/grpc/reflection/v1/reflection_pb.ts";
import { GrpcCode } from "../../services/shared/errors/status-map.ts";
import { grpcReflectionRoutes } from "../../services/shared/rpc/grpc-reflection.ts";
import { grpcMessageFrame, respondGrpcStatus } from "../../services/shared/rpc/grpc-wire.ts";
import { rawGrpcCall } from "../support/raw-grpc-call.ts";

type Request = Record<string, unknown> & { host?: string };
interface Response {
  valid_host: string;
  original_request: Request;
  message_response: string;
  file_descriptor_response?: { file_descriptor_proto: Buffer[] };
  all_extension_numbers_response?: { base_type_name: string; extension_number: number[] };
  list_services_response?: { service: { name: string }[] };
  error_response?: { error_code: number; error_message: string };
}
type ReflectionClient = grpc.Client & {
  ServerReflectionInfo(): grpc.ClientDuplexStream<Request, Response>;
};

const VERSIONS = ["v1", "v1alpha"] as const;
const require = createRequire(import.meta.url);
const protoDir = join(
  dirname(require.resolve("@grpc/reflection/package.json")),
  "build/proto/grpc/reflection",
);
const loaded = grpc.loadPackageDefinition(
  protoLoader.loadSync(
    VERSIONS.map((v) => join(protoDir, v, "reflection.proto")),
    { keepCase: true, defaults: true, oneofs: true },
  ),
) as unknown as {
  grpc: {
    reflection: Record<
      (typeof VERSIONS)[number],
      { ServerReflection: new (target: string, creds: grpc.ChannelCredentials) => ReflectionClient }
    >;
  };
};

/** One bidi stream: `ask` writes a request and resolves with the next answer, in order. */
function openStream(client: ReflectionClient) {
  const call = client.ServerReflectionInfo();
  const waiting: ((response: Response) => void)[] = [];
  call.on("data", (response: Response) => waiting.shift()?.(response));
  const status = new Promise<grpc.StatusObject>((resolve) => call.on("status", resolve));
  call.on("error", () => {});
  return {
    ask(request: Request): Promise<Response> {
      return new Promise((resolve) => {
        waiting.push(resolve);
        call.write(request);
      });
    },
    /** Half-closes and resolves with the status the server ended the call with. */
    close(): Promise<grpc.StatusObject> {
      call.end();
      return status;
    },
  };
}

const fileNames = (response: Response): string[] =>
  (response.file_descriptor_response?.file_descriptor_proto ?? []).map(
    (bytes) => fromBinary(FileDescriptorProtoSchema, bytes).name,
  );

// Field 1 with wire type 7, which does not exist: no ServerReflectionRequest starts like this.
const GARBAGE = Buffer.from([0x0f, 0xde, 0xad, 0xbe, 0xef]);

let server: http2.Http2Server;
let port: number;
const clients: ReflectionClient[] = [];

beforeAll(async () => {
  const routes = await grpcReflectionRoutes([TokenService, Health], 4 * 1024 * 1024);
  server = http2.createServer();
  server.on("stream", (stream, headers) => {
    const route = routes.get(String(headers[":path"]));
    if (route) route(stream, headers);
    else respondGrpcStatus(stream, { code: GrpcCode.UNIMPLEMENTED, message: "no such method" });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  port = (server.address() as AddressInfo).port;
  for (const version of VERSIONS) {
    clients.push(
      new loaded.grpc.reflection[version].ServerReflection(
        `127.0.0.1:${port}`,
        grpc.credentials.createInsecure(),
      ),
    );
  }
});
afterAll(async () => {
  for (const client of clients) client.close();
  await new Promise((resolve) => server?.close(resolve));
});

describe.each(VERSIONS.map((version, i) => ({ version, i })))(
  "grpc.reflection.$version.ServerReflection",
  ({ version, i }) => {
    const stream = () => openStream(clients[i]!);

    it("lists exactly the services it was given, echoing host and request", async () => {
      const s = stream();
      const response = await s.ask({ host: "reflect.example", list_services: "*" });
      expect(response.message_response).toBe("list_services_response");
      expect(response.list_services_response?.service.map((x) => x.name).sort()).toEqual([
        "gatehouse.v1.TokenService",
        "grpc.health.v1.Health",
      ]);
      expect(response.valid_host).toBe("reflect.example");
      expect(response.original_request).toMatchObject({ host: "reflect.example", list_services: "*" });
      expect((await s.close()).code).toBe(grpc.status.OK);
    });

    it("answers file_containing_symbol for a service with its file, as generated, and the files it imports", async () => {
      const s = stream();
      const response = await s.ask({ file_containing_symbol: "gatehouse.v1.TokenService" });
      expect(response.message_response).toBe("file_descriptor_response");
      const names = fileNames(response);
      expect(names[0]).toBe("gatehouse/v1/token_service.proto");
      expect(names.sort()).toEqual([
        "gatehouse/v1/token_service.proto",
        "gatehouse/v1/types.proto",
        "google/protobuf/struct.proto",
        "google/protobuf/timestamp.proto",
      ]);
      expect(new Uint8Array(response.file_descriptor_response!.file_descriptor_proto[0]!)).toEqual(
        toBinary(FileDescriptorProtoSchema, TokenService.file.proto),
      );
      await s.close();
    });

    it("answers file_containing_symbol for a method and file_by_filename", async () => {
      const s = stream();
      const method = await s.ask({ file_containing_symbol: "gatehouse.v1.TokenService.Refresh" });
      expect(fileNames(method)[0]).toBe("gatehouse/v1/token_service.proto");
      const [file] = method.file_descriptor_response!.file_descriptor_proto;
      expect(fromBinary(FileDescriptorProtoSchema, file!).service[0]?.method.map((m) => m.name)).toContain(
        "Refresh",
      );
      const health = await s.ask({ file_by_filename: "grpc/health/v1/health.proto" });
      expect(fileNames(health)).toEqual(["grpc/health/v1/health.proto"]);
      const types = await s.ask({ file_by_filename: "gatehouse/v1/types.proto" });
      expect(fileNames(types)).toEqual(["gatehouse/v1/types.proto", "google/protobuf/timestamp.proto"]);
      await s.close();
    });

    it("answers an unknown symbol or file with error_response NOT_FOUND, and the stream goes on", async () => {
      const s = stream();
      for (const request of [
        { file_containing_symbol: "gatehouse.v1.NoSuchService" },
        { file_by_filename: "gatehouse/v1/nope.proto" },
        { all_extension_numbers_of_type: "gatehouse.v1.NoSuchMessage" },
        {
          file_containing_extension: { containing_type: "gatehouse.v1.IssueRequest", extension_number: 100 },
        },
      ]) {
        const response = await s.ask(request);
        expect(response.message_response).toBe("error_response");
        expect(response.error_response?.error_code).toBe(5);
      }
      const extensions = await s.ask({ all_extension_numbers_of_type: "gatehouse.v1.IssueRequest" });
      expect(extensions.all_extension_numbers_response).toEqual({
        base_type_name: "gatehouse.v1.IssueRequest",
        extension_number: [],
      });
      expect((await s.close()).code).toBe(grpc.status.OK);
    });

    it("answers several requests sent at once on one stream, each in order", async () => {
      const s = stream();
      const symbols = [
        "grpc.health.v1.Health",
        "gatehouse.v1.TokenService.Issue",
        "gatehouse.v1.Session",
        "google.protobuf.Timestamp",
        "gatehouse.v1.NoSuchType",
        "grpc.health.v1.HealthCheckResponse.ServingStatus",
      ];
      const responses = await Promise.all(symbols.map((symbol) => s.ask({ file_containing_symbol: symbol })));
      expect(responses.map((r) => r.original_request["file_containing_symbol"])).toEqual(symbols);
      expect(responses.map((r) => fileNames(r)[0] ?? r.error_response?.error_code)).toEqual([
        "grpc/health/v1/health.proto",
        "gatehouse/v1/token_service.proto",
        "gatehouse/v1/types.proto",
        "google/protobuf/timestamp.proto",
        5,
        "grpc/health/v1/health.proto",
      ]);
      expect((await s.close()).code).toBe(grpc.status.OK);
    });

    it("ends the call with OK when the client half-closes without asking", async () => {
      expect((await stream().close()).code).toBe(grpc.status.OK);
    });

    const path = `/grpc.reflection.${version}.ServerReflection/ServerReflectionInfo`;

    it("answers a flood of requests sent in one go, all of them, without stalling", async () => {
      const request = grpcMessageFrame(
        toBinary(
          ServerReflectionRequestSchema,
          create(ServerReflectionRequestSchema, {
            messageRequest: { case: "fileContainingSymbol", value: "gatehouse.v1.TokenService" },
          }),
        ),
      );
      const answer = await rawGrpcCall(
        port,
        path,
        {},
        Buffer.concat(Array.from({ length: 2000 }, () => request)),
      );
      expect(answer.status).toBe(0);
      let answers = 0;
      for (let at = 0; at < answer.body.length; at += 5 + answer.body.readUInt32BE(at + 1)) answers++;
      expect(answers).toBe(2000);
    });

    it("ends a call whose first message does not decode with INVALID_ARGUMENT, trailers-only", async () => {
      const answer = await rawGrpcCall(port, path, {}, grpcMessageFrame(GARBAGE));
      expect(answer.status).toBe(GrpcCode.INVALID_ARGUMENT);
      expect(answer.body.length).toBe(0);
    });

    it("ends a call with INVALID_ARGUMENT after the answers to the messages before the bad one", async () => {
      const good = toBinary(
        ServerReflectionRequestSchema,
        create(ServerReflectionRequestSchema, { messageRequest: { case: "listServices", value: "*" } }),
      );
      const answer = await rawGrpcCall(
        port,
        path,
        {},
        Buffer.concat([grpcMessageFrame(good), grpcMessageFrame(GARBAGE), grpcMessageFrame(good)]),
      );
      expect(answer.status).toBe(GrpcCode.INVALID_ARGUMENT);
      expect(answer.body.readUInt32BE(1)).toBe(answer.body.length - 5);
      const response = fromBinary(ServerReflectionResponseSchema, answer.body.subarray(5));
      expect(response.messageResponse.case).toBe("listServicesResponse");
    });
  },
);
