import {
  create,
  type DescFile,
  type DescService,
  fromBinary,
  type MessageInitShape,
  toBinary,
} from "@bufbuild/protobuf";
import { nestedTypes } from "@bufbuild/protobuf/reflect";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import type {
  ServerReflectionRequest,
  ServerReflectionResponseSchema,
} from "../../gen/proto/grpc/reflection/v1/reflection_pb.ts";
import { GrpcCode } from "../errors/status-map.ts";
import {
  endGrpcCall,
  type GrpcStreamHandler,
  grpcMessageFrame,
  readGrpcMessages,
  startGrpcResponse,
} from "./grpc-wire.ts";

type Answer = MessageInitShape<typeof ServerReflectionResponseSchema>["messageResponse"];

/**
 * gRPC server reflection, v1 and v1alpha (`grpc.reflection.v1.ServerReflection` and
 * `grpc.reflection.v1alpha.ServerReflection`), for `services` and the types they use, so grpcurl
 * and `buf curl` work without the .proto files. Served on raw HTTP/2 streams (grpc-wire.ts).
 *
 * The lookups are our own, over the descriptors protobuf-es embeds in services/gen: those are the
 * FileDescriptorProtos buf compiled, already linked to the files they import, so answers carry them
 * byte for byte. @grpc/reflection's package exports its lookups only inside a service for a grpc-js
 * Server, and they decode and re-encode every file through protobufjs and work out a file's imports
 * from the types it references.
 *
 * v1alpha has v1's messages with v1's field numbers, so the v1 schema reads and writes both. The
 * schema is imported when reflection is turned on, not with the token service.
 */
export async function grpcReflectionRoutes(
  services: readonly DescService[],
  maxMessageBytes: number,
): Promise<Map<string, GrpcStreamHandler>> {
  const { ServerReflectionRequestSchema, ServerReflectionResponseSchema } = await import(
    "../../gen/proto/grpc/reflection/v1/reflection_pb.ts"
  );
  const lookups = reflectionLookups(services);

  const handler: GrpcStreamHandler = (stream, headers) => {
    let ended = false;
    readGrpcMessages(
      stream,
      headers,
      maxMessageBytes,
      (bytes) => {
        if (ended) return;
        let request: ServerReflectionRequest;
        try {
          request = fromBinary(ServerReflectionRequestSchema, bytes);
        } catch {
          ended = true;
          endGrpcCall(stream, {
            code: GrpcCode.INVALID_ARGUMENT,
            message: "not a grpc.reflection ServerReflectionRequest",
          });
          return;
        }
        const response = create(ServerReflectionResponseSchema, {
          validHost: request.host,
          originalRequest: request,
          messageResponse: lookups.answer(request.messageRequest),
        });
        if (!stream.headersSent) startGrpcResponse(stream);
        const frame = grpcMessageFrame(toBinary(ServerReflectionResponseSchema, response));
        // A client that keeps asking without reading would otherwise have every answer buffered
        // here: its requests are not read until the answers drain.
        if (!stream.write(frame) && !stream.isPaused()) {
          stream.pause();
          stream.once("drain", () => stream.resume());
        }
      },
      () => {
        if (ended) return;
        if (!stream.headersSent) startGrpcResponse(stream);
        stream.end();
      },
    );
  };
  return new Map([
    ["/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", handler],
    ["/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", handler],
  ]);
}

/**
 * Answers to each kind of request. Every file is indexed, imports included, so a client can ask for
 * any type it has seen; only `services` are listed. A file goes out with all its imports each time
 * it is asked for: the spec lets a server leave out files it sent earlier on the stream, but
 * clients cope with repeats and that would need state per stream.
 */
function reflectionLookups(services: readonly DescService[]) {
  const encoded = new Map<string, Uint8Array>();
  const files = new Map<string, DescFile>();
  /** The file declaring each fully-qualified name: types, and members that clients also ask for. */
  const symbols = new Map<string, DescFile>();
  /** By extended message: the file declaring each extension number. */
  const extensions = new Map<string, Map<number, DescFile>>();
  const extensionsOf = (typeName: string): Map<number, DescFile> => {
    const numbers = extensions.get(typeName) ?? new Map<number, DescFile>();
    extensions.set(typeName, numbers);
    return numbers;
  };

  const add = (file: DescFile): void => {
    if (files.has(file.proto.name)) return;
    files.set(file.proto.name, file);
    encoded.set(file.proto.name, toBinary(FileDescriptorProtoSchema, file.proto));
    for (const type of nestedTypes(file)) {
      symbols.set(type.typeName, file);
      switch (type.kind) {
        case "message":
          extensionsOf(type.typeName);
          for (const member of [...type.fields, ...type.oneofs])
            symbols.set(`${type.typeName}.${member.name}`, file);
          break;
        case "enum": {
          // Enum values are scoped like their enum, not inside it.
          const scope = type.typeName.slice(0, type.typeName.lastIndexOf(".") + 1);
          for (const value of type.values) symbols.set(scope + value.name, file);
          break;
        }
        case "service":
          for (const method of type.methods) symbols.set(`${type.typeName}.${method.name}`, file);
          break;
        case "extension":
          extensionsOf(type.extendee.typeName).set(type.number, file);
          break;
      }
    }
    for (const dependency of file.dependencies) add(dependency);
  };
  for (const service of services) add(service.file);

  const withImports = (file: DescFile): Answer => {
    const names = new Set<string>();
    const visit = (f: DescFile): void => {
      if (names.has(f.proto.name)) return;
      names.add(f.proto.name);
      for (const dependency of f.dependencies) visit(dependency);
    };
    visit(file);
    return {
      case: "fileDescriptorResponse",
      value: { fileDescriptorProto: [...names].map((name) => encoded.get(name)!) },
    };
  };
  const notFound = (message: string): Answer => ({
    case: "errorResponse",
    value: { errorCode: GrpcCode.NOT_FOUND, errorMessage: message },
  });

  return {
    answer(request: ServerReflectionRequest["messageRequest"]): Answer {
      switch (request.case) {
        case "listServices":
          return {
            case: "listServicesResponse",
            value: { service: services.map((s) => ({ name: s.typeName })) },
          };
        case "fileByFilename": {
          const file = files.get(request.value);
          return file ? withImports(file) : notFound(`no file ${request.value}`);
        }
        case "fileContainingSymbol": {
          const file = symbols.get(request.value);
          return file ? withImports(file) : notFound(`no symbol ${request.value}`);
        }
        case "fileContainingExtension": {
          const { containingType, extensionNumber } = request.value;
          const file = extensions.get(containingType)?.get(extensionNumber);
          return file ? withImports(file) : notFound(`no extension ${extensionNumber} of ${containingType}`);
        }
        case "allExtensionNumbersOfType": {
          const numbers = extensions.get(request.value);
          return numbers
            ? {
                case: "allExtensionNumbersResponse",
                value: { baseTypeName: request.value, extensionNumber: [...numbers.keys()] },
              }
            : notFound(`no message ${request.value}`);
        }
        case undefined:
          return {
            case: "errorResponse",
            value: {
              errorCode: GrpcCode.UNIMPLEMENTED,
              errorMessage: "a reflection request this server does not know",
            },
          };
      }
    },
  };
}
