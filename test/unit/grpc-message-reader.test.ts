// readGrpcMessages (services/shared/rpc/grpc-wire.ts), the reader of streaming calls (server
// reflection), against the way a client may split its messages: into DATA frames of one byte.
// An unauthenticated reflection stream fed 60,000 one-byte frames once blocked the token service's
// event loop for 2.4 s, because every frame copied all the bytes buffered before it.
import { EventEmitter } from "node:events";
import type * as http2 from "node:http2";
import { afterEach, describe, expect, it, vi } from "vitest";
import { grpcMessageFrame, readGrpcMessages } from "../../services/shared/rpc/grpc-wire.ts";

/** Just what the reader touches of a server stream: events, and whether an answer began. */
function fakeStream() {
  const stream = Object.assign(new EventEmitter(), {
    headersSent: false,
    closed: false,
    responded: [] as http2.OutgoingHttpHeaders[],
    respond(headers: http2.OutgoingHttpHeaders) {
      stream.headersSent = true;
      stream.responded.push(headers);
    },
    resume() {},
    end() {},
  });
  return stream;
}

const HEADERS = { ":method": "POST", "content-type": "application/grpc" };

afterEach(() => vi.restoreAllMocks());

describe("readGrpcMessages", () => {
  it("copies a message a bounded number of times however finely it is split", () => {
    const messages = [Buffer.alloc(30_000, 1), Buffer.alloc(20_000, 2)];
    const wire = Buffer.concat(messages.map((m) => grpcMessageFrame(m)));
    const stream = fakeStream();
    const got: Uint8Array[] = [];
    let ended = false;
    readGrpcMessages(
      stream as unknown as http2.ServerHttp2Stream,
      HEADERS,
      64 * 1024,
      (m) => got.push(m),
      () => (ended = true),
    );
    const concat = vi.spyOn(Buffer, "concat");
    for (const byte of wire) stream.emit("data", Buffer.of(byte));
    stream.emit("end");
    const copied = concat.mock.results.reduce((n, r) => n + (r.value as Buffer).length, 0);
    expect(got.map((m) => Buffer.from(m))).toEqual(messages);
    expect(ended).toBe(true);
    // Once when a prefix is complete, once when its message is: about twice the bytes, not n²/2.
    expect(copied).toBeLessThanOrEqual(2 * wire.length);
  });

  it("reads several messages from one chunk, and a message split across chunks at any point", () => {
    const messages = [Buffer.from("a"), Buffer.alloc(0), Buffer.from("bcdef"), Buffer.alloc(300, 7)];
    const wire = Buffer.concat(messages.map((m) => grpcMessageFrame(m)));
    for (const at of [0, 1, 3, 5, 6, 7, 12, 100, wire.length - 1]) {
      const stream = fakeStream();
      const got: Uint8Array[] = [];
      readGrpcMessages(
        stream as unknown as http2.ServerHttp2Stream,
        HEADERS,
        1024,
        (m) => got.push(m),
        () => {},
      );
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
    const stream = fakeStream();
    const got: Uint8Array[] = [];
    readGrpcMessages(
      stream as unknown as http2.ServerHttp2Stream,
      HEADERS,
      1024,
      (m) => got.push(m),
      () => {},
    );
    const prefix = Buffer.from([0, 0, 0, 0x04, 0x01]);
    for (const byte of prefix) stream.emit("data", Buffer.of(byte));
    expect(stream.responded[0]?.["grpc-status"]).toBe("8");
    stream.emit("data", Buffer.alloc(2000));
    expect(got).toEqual([]);
  });

  it("ends a call whose last message is cut off with INVALID_ARGUMENT", () => {
    const stream = fakeStream();
    let ended = false;
    readGrpcMessages(
      stream as unknown as http2.ServerHttp2Stream,
      HEADERS,
      1024,
      () => {},
      () => (ended = true),
    );
    stream.emit("data", grpcMessageFrame(Buffer.from("hello")).subarray(0, 7));
    stream.emit("end");
    expect(ended).toBe(false);
    expect(stream.responded[0]?.["grpc-status"]).toBe("3");
  });
});
