import * as http2 from "node:http2";

export interface RawGrpcAnswer {
  headers: http2.IncomingHttpHeaders;
  trailers: http2.IncomingHttpHeaders;
  /** Every DATA byte, message prefixes included. */
  body: Buffer;
  /** grpc-status from the trailers, or from the headers of a trailers-only answer. */
  status: number;
  ms: number;
}

/** Opens a gRPC call's stream on `session` (POST, `application/grpc`, `te: trailers`, then `headers`); sends nothing. */
export function openGrpcStream(
  session: http2.ClientHttp2Session,
  path: string,
  headers: http2.OutgoingHttpHeaders = {},
): http2.ClientHttp2Stream {
  return session.request({
    ":method": "POST",
    ":path": path,
    "content-type": "application/grpc",
    te: "trailers",
    ...headers,
  });
}

/**
 * One gRPC call as raw HTTP/2, carrying exactly `body` with any headers: for requests no gRPC
 * library would send. On `target` a port (a connection of its own, closed after) or an open session.
 */
export function rawGrpcCall(
  target: number | http2.ClientHttp2Session,
  path: string,
  headers: http2.OutgoingHttpHeaders,
  body: Buffer,
): Promise<RawGrpcAnswer> {
  const own = typeof target === "number" ? http2.connect(`http://127.0.0.1:${target}`) : undefined;
  const session = own ?? (target as http2.ClientHttp2Session);
  const started = performance.now();
  return new Promise<RawGrpcAnswer>((resolve, reject) => {
    own?.on("error", reject);
    const stream = openGrpcStream(session, path, headers);
    let answer: http2.IncomingHttpHeaders = {};
    let trailers: http2.IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    stream.on("response", (h) => (answer = h));
    stream.on("trailers", (t) => (trailers = t));
    stream.on("data", (c: Buffer) => chunks.push(c));
    stream.on("error", reject);
    stream.on("close", () => {
      own?.close();
      const status = Number(trailers["grpc-status"] ?? answer["grpc-status"]);
      resolve({
        headers: answer,
        trailers,
        body: Buffer.concat(chunks),
        status,
        ms: performance.now() - started,
      });
    });
    stream.end(body);
  });
}
