import { type DescFile, type DescService, toBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import type * as grpc from "@grpc/grpc-js";
import type { PackageDefinition } from "@grpc/proto-loader";

/**
 * gRPC server reflection, v1 and v1alpha (`grpc.reflection.v1.ServerReflection` and
 * `grpc.reflection.v1alpha.ServerReflection`), for `services` and the types they use, so grpcurl
 * and `buf curl` work without the .proto files.
 *
 * @grpc/reflection reads a proto-loader package definition, but all it takes from one is each
 * entry's `fileDescriptorProtos`: the FileDescriptorProto bytes of the files. The protobuf-es code
 * in services/gen embeds exactly those descriptors, so they are handed over as they are, with every
 * file they import. Loaded only when reflection is on: it pulls in protobufjs.
 */
export async function addGrpcReflection(
  server: grpc.Server,
  services: readonly DescService[],
): Promise<void> {
  const { ReflectionService } = await import("@grpc/reflection");
  const files = new Map<string, Uint8Array>();
  const add = (file: DescFile): void => {
    const name = file.proto.name;
    if (files.has(name)) return;
    files.set(name, toBinary(FileDescriptorProtoSchema, file.proto));
    for (const dependency of file.dependencies) add(dependency);
  };
  for (const service of services) add(service.file);
  const definition = { gatehouse: { fileDescriptorProtos: [...files.values()] } };
  new ReflectionService(definition as unknown as PackageDefinition, {
    services: services.map((s) => s.typeName),
  }).addToServer(server);
}
