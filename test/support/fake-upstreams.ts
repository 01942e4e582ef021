import { createHash } from "node:crypto";
import http from "node:http";
import type { AddressInfo, Socket } from "node:net";

/** What reached a {@link startRecordingUpstream} app: a request (with its trailers) or a WebSocket handshake. */
interface Seen {
  kind: "request" | "upgrade";
  headers: http.IncomingHttpHeaders;
  trailers: NodeJS.Dict<string>;
}

export interface RecordingUpstream {
  server: http.Server;
  port: number;
  /** `http://127.0.0.1:<port>`, for GATEHOUSE_UPSTREAM. */
  url: string;
  seen: Seen[];
  last(): Seen;
  close(): Promise<void>;
}

/**
 * The app behind a sidecar under test: an HTTP/1.1 server on a loopback port that reads each request
 * to its end, answers 200 `ok`, accepts WebSocket handshakes, and records what reached it, so a test
 * can assert on what the app was given rather than on what the sidecar says it sent.
 */
export async function startRecordingUpstream(): Promise<RecordingUpstream> {
  const seen: Seen[] = [];
  const server = http.createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      seen.push({ kind: "request", headers: req.headers, trailers: req.trailers });
      res.writeHead(200, { "content-type": "text/plain" }).end("ok");
    });
  });
  server.on("upgrade", (req: http.IncomingMessage, socket: Socket) => {
    seen.push({ kind: "upgrade", headers: req.headers, trailers: {} });
    const accept = createHash("sha1")
      .update(`${req.headers["sec-websocket-key"]}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`)
      .digest("base64");
    socket.end(
      `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`,
    );
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const port = (server.address() as AddressInfo).port;
  return {
    server,
    port,
    url: `http://127.0.0.1:${port}`,
    seen,
    last: () => seen.at(-1)!,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
