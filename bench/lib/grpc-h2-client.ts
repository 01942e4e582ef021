/**
 * A unary gRPC client on bare node:http2, for load generation only: the same bytes on the wire as any
 * gRPC client (HTTP/2 POST, `application/grpc`, 5-byte length prefix, status in trailers), without
 * grpc-js's channel, interceptor and call-stream machinery. A load generator on the same cores as the
 * service must cost less than the service, or it measures itself: on this 2-core machine grpc-js's
 * client took 446 µs of CPU per Refresh against the service's ~400 (bench/README.md, P1).
 *
 * It speaks only what the benchmarks need: unary calls, no compression, no deadlines, one connection
 * per `connections`, requests spread over them round-robin by the caller's slot.
 */
import * as http2 from "node:http2";
import { grpcMessageFrame } from "../../services/shared/rpc/grpc-wire.ts";

export class GrpcCallError extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

export interface GrpcH2Client {
  /** Calls `path` (`/package.Service/Method`) with an encoded request; resolves with the encoded reply. */
  unary(slot: number, path: string, request: Uint8Array): Promise<Buffer>;
  close(): void;
}

export function connectGrpcH2(port: number, metadata: Record<string, string>, connections = 2): GrpcH2Client {
  const sessions = Array.from({ length: connections }, () => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    session.on("error", () => {}); // every call on it fails with its own stream error
    return session;
  });
  return {
    unary(slot, path, request) {
      return new Promise((resolve, reject) => {
        const stream = sessions[slot % connections]!.request({
          ":method": "POST",
          ":path": path,
          "content-type": "application/grpc",
          te: "trailers",
          ...metadata,
        });
        const chunks: Buffer[] = [];
        let status: string | undefined;
        let message = "";
        const statusFrom = (headers: http2.IncomingHttpHeaders) => {
          if (headers["grpc-status"] === undefined) return;
          status = String(headers["grpc-status"]);
          message = decodeURIComponent(String(headers["grpc-message"] ?? ""));
        };
        stream.on("response", statusFrom); // a trailers-only answer carries the status here
        stream.on("trailers", statusFrom);
        stream.on("data", (chunk: Buffer) => chunks.push(chunk));
        stream.on("error", reject);
        stream.on("end", () => {
          if (status !== "0") {
            reject(new GrpcCallError(Number(status ?? 2), message || "no grpc-status"));
            return;
          }
          const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
          if (body.length < 5 || body[0] !== 0 || body.readUInt32BE(1) !== body.length - 5) {
            reject(new GrpcCallError(13, "reply is not one uncompressed gRPC message"));
            return;
          }
          resolve(body.subarray(5));
        });
        stream.end(grpcMessageFrame(request));
      });
    },
    close() {
      for (const s of sessions) s.close();
    },
  };
}
