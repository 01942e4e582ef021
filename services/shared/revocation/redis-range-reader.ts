import type { Socket } from "node:net";
import { openRedisSocket, type RedisSocketOptions } from "./redis-connector.ts";
import type { BusEntry } from "./revocation-bus.ts";

/** Where and how to connect: the fields of ioredis's own parsed options that a plain connection needs. */
interface RangeConnection extends RedisSocketOptions {
  username?: string | undefined;
  password?: string | undefined;
  db?: number | undefined;
  /** Prepended to every key, as ioredis's `keyPrefix` is. */
  keyPrefix?: string | undefined;
}

export interface RangeReaderOptions {
  connection: RangeConnection;
  /** CLIENT SETNAME, so the connection is recognisable in CLIENT LIST. */
  name: string;
  connectTimeoutMs: number;
  /**
   * A request fails when the server has sent nothing for this long. A connection with no request
   * is closed after this long too: bootstraps are rare, so it is not kept open between them.
   */
  commandTimeoutMs: number;
}

export interface RangeReader {
  /** `XRANGE stream (afterId + COUNT count`, as {@link BusEntry} values. Rejects on a Redis error or a lost connection. */
  range(stream: string, afterId: string, count: number): Promise<BusEntry[]>;
  /** Ends the connection; pending and later ranges reject. Idempotent. */
  close(): void;
}

/**
 * XRANGE on a connection of its own, with a reply reader made for that one reply shape.
 *
 * Why not ioredis, which does everything else on the bus: a sidecar's bootstrap reads the whole
 * stream, a million entries at the target size. ioredis's general RESP parser builds each reply
 * as nested arrays of strings (about six objects an entry) before handing it over, and a page of
 * 10,000 entries lives through several young-generation collections while it is built and then
 * copied into a BusEntry list: at 1M entries the bootstrap spent 1.2 s of its 3.9 s in scavenges.
 * Here each entry becomes its BusEntry as its bytes arrive (one object, one array, its strings)
 * and the rest of the reply is read from one reused buffer. With the follower's pages of 2,000 the
 * same bootstrap takes 1.8-2.0 s, 0.13 s of it GC; through ioredis, the same pages take 3.5-3.8 s.
 *
 * The connection speaks RESP2 (no HELLO), authenticates and selects the database as ioredis
 * would, and pipelines requests: the follower asks for the next page before applying this one.
 */
export function createRangeReader(options: RangeReaderOptions): RangeReader {
  const { connection, connectTimeoutMs, commandTimeoutMs } = options;
  const prefix = connection.keyPrefix ?? "";
  let socket: Socket | undefined;
  let closed = false;
  /** Requests in the order their replies will arrive. Handshake replies are in the queue too. */
  const queue: Pending[] = [];
  const input = createInputBuffer();
  const handshake: string[][] = [];
  if (connection.password) {
    handshake.push(
      connection.username
        ? ["AUTH", connection.username, connection.password]
        : ["AUTH", connection.password],
    );
  }
  if (connection.db) handshake.push(["SELECT", String(connection.db)]);
  handshake.push(["CLIENT", "SETNAME", options.name]);

  const fail = (err: Error) => {
    const s = socket;
    socket = undefined;
    input.reset();
    for (const p of queue.splice(0)) if (p.kind === "range") p.reject(err);
    s?.destroy();
  };

  const open = (): Socket => {
    const s = openRedisSocket(connection);
    const connected = connection.tls ? "secureConnect" : "connect";
    const connectTimer = setTimeout(() => {
      if (socket === s) fail(new Error(`redis not connected within ${connectTimeoutMs} ms`));
    }, connectTimeoutMs);
    s.once(connected, () => clearTimeout(connectTimer));
    s.setNoDelay(true);
    s.setTimeout(commandTimeoutMs);
    s.on("timeout", () => {
      if (socket !== s) return;
      if (queue.length > 0) fail(new Error(`redis gave no answer within ${commandTimeoutMs} ms`));
      else {
        socket = undefined;
        input.reset();
        s.end();
      }
    });
    s.on("data", (chunk: Buffer) => {
      if (socket !== s) return;
      input.append(chunk);
      try {
        drain();
      } catch (err) {
        fail(err as Error);
      }
    });
    s.on("error", (err) => {
      clearTimeout(connectTimer);
      if (socket === s) fail(new Error(`redis range connection failed: ${err.message}`));
    });
    s.on("close", () => {
      clearTimeout(connectTimer);
      if (socket === s) fail(new Error("redis range connection closed"));
    });
    // The handshake is pipelined ahead of the first request; an error in it fails the connection.
    for (const args of handshake) {
      queue.push({ kind: "status", command: args[0]!, required: args[0] !== "CLIENT" });
      s.write(encodeCommand(args));
    }
    return s;
  };

  /** Settles every request whose whole reply has arrived. */
  const drain = () => {
    while (queue.length > 0) {
      const head = queue[0]!;
      const outcome = head.kind === "status" ? readStatus(input) : readRange(input, head);
      if (outcome === INCOMPLETE) break;
      queue.shift();
      if (head.kind === "status") {
        // Everything pipelined behind a refused AUTH would only answer NOAUTH: fail them all with the
        // reason. The name is only a courtesy: an ACL user may lack CLIENT SETNAME and still read.
        if (outcome instanceof Error && head.required)
          throw new Error(`redis refused ${head.command}: ${outcome.message}`);
      } else if (outcome instanceof Error) head.reject(outcome);
      else head.resolve(head.entries);
    }
    input.compactIfEmpty();
  };

  return {
    range(stream, afterId, count) {
      if (closed) return Promise.reject(new Error("bus closed"));
      return new Promise<BusEntry[]>((resolve, reject) => {
        socket ??= open();
        queue.push({ kind: "range", resolve, reject, entries: [], left: -1 });
        socket.write(encodeCommand(["XRANGE", prefix + stream, `(${afterId}`, "+", "COUNT", String(count)]));
      });
    },
    close() {
      if (closed) return;
      closed = true;
      fail(new Error("bus closed"));
    },
  };
}

type Pending =
  | { kind: "status"; command: string; required: boolean }
  | {
      kind: "range";
      resolve: (entries: BusEntry[]) => void;
      reject: (err: Error) => void;
      entries: BusEntry[];
      /** Entries still to read; -1 before the reply's header. */
      left: number;
    };

const INCOMPLETE = Symbol("incomplete");
const CR = 13;
const PLUS = 43;
const MINUS = 45;
const STAR = 42;
const DOLLAR = 36;
const LOWER_E = 101;
/** Field names are nearly always this one: the shared string saves an allocation an entry. */
const ENTRY_FIELD = "e";

function protocolError(what: string): Error {
  return new Error(`unexpected reply from redis: ${what}`);
}

function encodeCommand(args: readonly string[]): string {
  let out = `*${args.length}\r\n`;
  for (const a of args) out += `$${Buffer.byteLength(a)}\r\n${a}\r\n`;
  return out;
}

interface InputBuffer {
  append(chunk: Buffer): void;
  /** Bytes received and not yet consumed: [start, end) of `bytes`. */
  readonly bytes: Buffer;
  start: number;
  readonly end: number;
  compactIfEmpty(): void;
  reset(): void;
}

/** Received bytes in one buffer that grows to the largest unconsumed run (a page's tail) and is reused. */
function createInputBuffer(): InputBuffer {
  const initial = 64 * 1024;
  let bytes = Buffer.allocUnsafe(initial);
  let start = 0;
  let end = 0;
  return {
    append(chunk) {
      if (end + chunk.length > bytes.length) {
        const live = end - start;
        const target =
          bytes.length >= (live + chunk.length) * 2 ? bytes : Buffer.allocUnsafe((live + chunk.length) * 2);
        bytes.copy(target, 0, start, end);
        bytes = target;
        start = 0;
        end = live;
      }
      chunk.copy(bytes, end);
      end += chunk.length;
    },
    get bytes() {
      return bytes;
    },
    get start() {
      return start;
    },
    set start(value: number) {
      start = value;
    },
    get end() {
      return end;
    },
    compactIfEmpty() {
      if (start === end) start = end = 0;
    },
    reset() {
      bytes = Buffer.allocUnsafe(initial);
      start = end = 0;
    },
  };
}

/** Position after the `\r\n` that ends the integer read by {@link readInt}. */
let afterInt = 0;

/** The integer between `p` and the next CRLF (RESP length or count), or INCOMPLETE. */
function readInt(b: Buffer, p: number, end: number): number | typeof INCOMPLETE {
  let negative = false;
  if (p < end && b[p] === MINUS) {
    negative = true;
    p++;
  }
  let n = 0;
  let digits = 0;
  for (; p < end; p++) {
    const c = b[p]!;
    if (c === CR) break;
    if (c < 48 || c > 57) throw protocolError("bad integer");
    n = n * 10 + (c - 48);
    digits++;
  }
  if (p + 2 > end) return INCOMPLETE;
  if (digits === 0) throw protocolError("empty integer");
  afterInt = p + 2;
  return negative ? -n : n;
}

/** The line from `p` (after its type byte) to CRLF, or INCOMPLETE; sets {@link afterInt} past it. */
function readLine(b: Buffer, p: number, end: number): string | typeof INCOMPLETE {
  const cr = b.indexOf(CR, p);
  if (cr < 0 || cr + 2 > end) return INCOMPLETE;
  afterInt = cr + 2;
  return b.toString("utf8", p, cr);
}

/** A simple-string reply (`+OK`): null when read, an Error for `-ERR`, or INCOMPLETE. */
function readStatus(input: InputBuffer): null | Error | typeof INCOMPLETE {
  const { bytes, start, end } = input;
  if (start >= end) return INCOMPLETE;
  const type = bytes[start];
  if (type !== PLUS && type !== MINUS) throw protocolError(`type ${String.fromCharCode(type!)} for a status`);
  const line = readLine(bytes, start + 1, end);
  if (line === INCOMPLETE) return INCOMPLETE;
  input.start = afterInt;
  return type === MINUS ? new Error(line) : null;
}

/**
 * Reads as much of an XRANGE reply as has arrived, whole entries at a time (a partial entry is
 * left in the buffer until the rest comes). Null when the reply is complete, an Error for a Redis
 * error reply, INCOMPLETE otherwise.
 */
function readRange(
  input: InputBuffer,
  pending: { entries: BusEntry[]; left: number },
): null | Error | typeof INCOMPLETE {
  const b = input.bytes;
  const end = input.end;
  let p = input.start;
  if (pending.left < 0) {
    if (p >= end) return INCOMPLETE;
    if (b[p] === MINUS) {
      const line = readLine(b, p + 1, end);
      if (line === INCOMPLETE) return INCOMPLETE;
      input.start = afterInt;
      return new Error(line);
    }
    if (b[p] !== STAR) throw protocolError("XRANGE reply is not an array");
    const n = readInt(b, p + 1, end);
    if (n === INCOMPLETE) return INCOMPLETE;
    pending.left = Math.max(0, n);
    p = input.start = afterInt;
  }
  while (pending.left > 0) {
    // Entry: *2 $<id> *<2k> $<field> $<value>...
    if (p >= end) return INCOMPLETE;
    if (b[p] !== STAR) throw protocolError("stream entry is not an array");
    const parts = readInt(b, p + 1, end);
    if (parts === INCOMPLETE) return INCOMPLETE;
    if (parts !== 2) throw protocolError("stream entry is not [id, fields]");
    p = afterInt;
    if (p >= end) return INCOMPLETE;
    if (b[p] !== DOLLAR) throw protocolError("stream entry id is not a bulk string");
    const idLength = readInt(b, p + 1, end);
    if (idLength === INCOMPLETE) return INCOMPLETE;
    p = afterInt;
    if (p + idLength + 2 > end) return INCOMPLETE;
    const idStart = p;
    p += idLength + 2;
    if (p >= end) return INCOMPLETE;
    if (b[p] !== STAR) throw protocolError("stream entry fields are not an array");
    const count = readInt(b, p + 1, end);
    if (count === INCOMPLETE) return INCOMPLETE;
    p = afterInt;
    const fields: string[] = [];
    for (let i = 0; i < count; i++) {
      if (p >= end) return INCOMPLETE;
      if (b[p] !== DOLLAR) throw protocolError("stream field is not a bulk string");
      const length = readInt(b, p + 1, end);
      if (length === INCOMPLETE) return INCOMPLETE;
      p = afterInt;
      if (length < 0) {
        fields.push("");
        continue;
      }
      if (p + length + 2 > end) return INCOMPLETE;
      fields.push(length === 1 && b[p] === LOWER_E ? ENTRY_FIELD : b.toString("utf8", p, p + length));
      p += length + 2;
    }
    pending.entries.push({ id: b.toString("latin1", idStart, idStart + idLength), fields });
    pending.left--;
    input.start = p;
  }
  return null;
}
