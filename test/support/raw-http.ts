import * as http2 from "node:http2";
import { connect } from "node:net";

export interface RawAnswer {
  /** HTTP status of the answer; 0 when the connection closed without one. */
  status: number;
  /** `grpc-status` when the answer carried one (gRPC refusals answer HTTP 200). */
  grpcStatus: string | undefined;
  text: string;
}

/**
 * Sends one HTTP/1.1 request as exact bytes (no client library normalising the target or headers)
 * and reads the answer until the server closes the connection (the request says `Connection: close`).
 */
export function rawRequest(
  port: number,
  request: { method: string; target: Buffer | string; headers: [string, string][]; body?: string },
  timeoutMs = 5000,
): Promise<RawAnswer> {
  const body = Buffer.from(request.body ?? "");
  const head = [
    ...request.headers.map(([k, v]) => `${k}: ${v}\r\n`),
    `content-length: ${body.length}\r\n`,
    "connection: close\r\n\r\n",
  ].join("");
  const bytes = Buffer.concat([
    Buffer.from(`${request.method} `, "latin1"),
    Buffer.isBuffer(request.target) ? request.target : Buffer.from(request.target, "latin1"),
    Buffer.from(" HTTP/1.1\r\n", "latin1"),
    Buffer.from(head, "latin1"),
    body,
  ]);
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const socket = connect({ host: "127.0.0.1", port }, () => socket.write(bytes));
    const finish = () => {
      clearTimeout(timer);
      const text = Buffer.concat(chunks).toString("latin1");
      const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(text)?.[1] ?? 0);
      const headEnd = text.indexOf("\r\n\r\n");
      const grpcStatus = /\r\ngrpc-status: *(\d+)/i.exec(headEnd === -1 ? text : text.slice(0, headEnd))?.[1];
      resolve({ status, grpcStatus, text });
    };
    const timer = setTimeout(() => socket.destroy(), timeoutMs);
    socket.on("data", (d: Buffer) => chunks.push(d));
    socket.once("close", finish);
    socket.on("error", () => {});
  });
}

/** Sends one h2c request (prior knowledge, as gRPC speaks cleartext) and reads the answer. */
export function h2cRequest(
  port: number,
  request: { method: string; path: string; headers: Record<string, string>; body?: string },
  timeoutMs = 5000,
): Promise<RawAnswer> {
  return new Promise((resolve) => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    const timer = setTimeout(() => session.destroy(), timeoutMs);
    let status = 0;
    let grpcStatus: string | undefined;
    let text = "";
    let settled = false;
    const done = () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      session.close();
      resolve({ status, grpcStatus, text });
    };
    session.on("error", done);
    let stream: http2.ClientHttp2Stream;
    try {
      stream = session.request({ ":method": request.method, ":path": request.path, ...request.headers });
    } catch {
      done();
      return;
    }
    stream.on("response", (h) => {
      status = Number(h[":status"]);
      if (h["grpc-status"] !== undefined) grpcStatus = String(h["grpc-status"]);
    });
    stream.on("trailers", (t) => {
      if (t["grpc-status"] !== undefined) grpcStatus = String(t["grpc-status"]);
    });
    stream.setEncoding("utf8");
    stream.on("data", (d: string) => {
      text += d;
    });
    stream.on("close", done);
    stream.on("error", () => {});
    stream.end(request.body ?? "");
  });
}
