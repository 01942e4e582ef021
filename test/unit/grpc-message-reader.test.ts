// readGrpcMessages (services/shared/rpc/grpc-wire.ts), the reader of streaming calls (server
// reflection), against the way a client may split its messages: into DATA frames of one byte.
// An unauthenticated reflection stream fed 60,000 one-byte frames once blocked the token service's
// event loop for 2.4 s, because every frame copied all the bytes buffered before it.
import { EventEmitter } from "node:events";
import type * as http2 from "node:http2";
import { afterEach, describe, expect, it, vi } from "vitest";
import { grpcMessageFrame, readGrpcMessages } from "../../services/shared/rpc/grpc-wire.ts";

/**
 * Just what the reader touches of a server stream: events, whether an answer began, whether the
 * client has ended its half (`state.remoteClose`), and whether the server reset the stream.
 */
function fakeStream() {
  const stream = Object.assign(new EventEmitter(), {
    headersSent: false,
    closed: false,
    state: { remoteClose: 0 },
    responded: [] as http2.OutgoingHttpHeaders[],
    respond(headers: http2.OutgoingHttpHeaders) {
      stream.headersSent = true;
      stream.responded.push(headers);
    },
    resume() {},
    end() {},
    close() {
      stream.closed = true;
    },
  });
  stream.on("end", () => (stream.state.remoteClose = 1));
  return stream;
}

const HEADERS = { ":method": "POST", "content-type": "application/grpc" };

/** A reader on a fake stream: the messages it hands over, and whether it saw the client's end. */
function reader(maxBytes: number) {
  const stream = fakeStream();
  const got: Buffer[] = [];
  const seen = { ended: false };
  readGrpcMessages(
    stream as unknown as http2.ServerHttp2Stream,
    HEADERS,
    maxBytes,
    (m) => got.push(Buffer.from(m)),
    () => (seen.ended = true),
  );
  return { stream, got, seen };
}

afterEach(() => vi.restoreAllMocks());

describe("readGrpcMessages", () => {
  it("copies a message a bounded number of times however finely it is split", () => {
    const messages = [Buffer.alloc(30_000, 1), Buffer.alloc(20_000, 2)];
    const wire = Buffer.concat(messages.map((m) => grpcMessageFrame(m)));
    const { stream, got, seen } = reader(64 * 1024);
    const concat = vi.spyOn(Buffer, "concat");
    for (const byte of wire) stream.emit("data", Buffer.of(byte));
    stream.emit("end");
    const copied = concat.mock.results.reduce((n, r) => n + (r.value as Buffer).length, 0);
    expect(got).toEqual(messages);
    expect(seen.ended).toBe(true);
    // Once when a prefix is complete, once when its message is: about twice the bytes, not n²/2.
    expect(copied).toBeLessThanOrEqual(2 * wire.length);
  });

  it("reads several messages from one chunk, and a message split across chunks at any point", () => {
    const messages = [Buffer.from("a"), Buffer.alloc(0), Buffer.from("bcdef"), Buffer.alloc(300, 7)];
    const wire = Buffer.concat(messages.map((m) => grpcMessageFrame(m)));
    for (const at of [0, 1, 3, 5, 6, 7, 12, 100, wire.length - 1]) {
      const { stream, got } = reader(1024);
      stream.emit("data", wire.subarray(0, at));
      stream.emit("data", wire.subarray(at));
      stream.emit("end");
      expect(
        got.map((m) => Buffer.from(m)),
        `split at ${at}`,
      ).toEqual(messages);
    }
  });

  it("refuses a message longer than the limit as soon as its prefix says so", () => {
    const { stream, got } = reader(1024);
    const prefix = Buffer.from([0, 0, 0, 0x04, 0x01]);
    for (const byte of prefix) stream.emit("data", Buffer.of(byte));
    expect(stream.responded[0]?.["grpc-status"]).toBe("8");
    // The client is still sending: the answer is followed by RST_STREAM, freeing the stream.
    expect(stream.closed).toBe(true);
    stream.emit("data", Buffer.alloc(2000));
    expect(got).toEqual([]);
  });

  it("ends a call whose last message is cut off with INVALID_ARGUMENT", () => {
    const { stream, seen } = reader(1024);
    stream.emit("data", grpcMessageFrame(Buffer.from("hello")).subarray(0, 7));
    stream.emit("end");
    expect(seen.ended).toBe(false);
    expect(stream.responded[0]?.["grpc-status"]).toBe("3");
    // The client had ended its half: nothing to reset.
    expect(stream.closed).toBe(false);
  });
});
