import { randomUUID } from "node:crypto";
import type * as http2 from "node:http2";
import type { TraceSpan } from "../tracing/tracing.ts";

/** The wire protocol a call arrived on; `oauth2` is a form post to an OAuth endpoint on :7480. */
export type RpcProtocol = "grpc" | "grpc-web" | "connect" | "oauth2";

/**
 * What a handler may know about the call besides its request message, the same on every protocol.
 * Handlers read caller credentials with `header("authorization")`; they never see transport objects.
 */
export interface CallContext {
  /** Fully qualified service name, e.g. "gatehouse.v1.TokenService". */
  readonly service: string;
  /** Method name as in the .proto, e.g. "Issue". */
  readonly method: string;
  readonly protocol: RpcProtocol;
  /**
   * A request header (gRPC metadata); `name` in lower case. gRPC: the first value, `-bin` values as
   * base64. Connect and gRPC-Web: repeated headers arrive joined with ", ".
   */
  header(name: string): string | undefined;
  /** Remote address and port of the connection, e.g. "127.0.0.1:53422". */
  readonly peer: string | undefined;
  /** The caller's `x-request-id` when it is sane (1-128 chars of `[\w.-]`), else a random UUID. */
  readonly requestId: string;
  /** The call's trace span when tracing is on: handlers hang child spans (a flow's database work) on it. */
  readonly span?: TraceSpan | undefined;
}

const SANE_REQUEST_ID = /^[\w.-]{1,128}$/;

/** A caller-supplied request id if it is safe to log and echo, else a fresh random one. */
export function requestIdFrom(header: string | undefined): string {
  return header !== undefined && SANE_REQUEST_ID.test(header) ? header : randomUUID();
}

/**
 * CallContext over the headers of a native gRPC call (an HTTP/2 stream). Everything is read lazily:
 * most calls never look at the peer, and the request id is only needed when something is logged or
 * an error is sent.
 */
export class GrpcCallContext implements CallContext {
  readonly protocol = "grpc";
  span: TraceSpan | undefined;
  #requestId: string | undefined;

  constructor(
    readonly service: string,
    readonly method: string,
    private readonly headers: http2.IncomingHttpHeaders,
    private readonly stream: http2.ServerHttp2Stream,
  ) {}

  /**
   * gRPC metadata is every header but the pseudo-headers. A repeated header arrives from node:http2
   * either as an array (we take the first value, as grpc-js did) or joined with ", " (kept joined:
   * two `authorization` values then fail to parse, the safe answer). `-bin` values stay base64.
   */
  header(name: string): string | undefined {
    if (name.startsWith(":")) return undefined;
    const value = this.headers[name];
    return Array.isArray(value) ? value[0] : value;
  }

  get peer(): string | undefined {
    const socket = this.stream.session?.socket;
    const address = socket?.remoteAddress;
    if (address === undefined) return undefined;
    return address.includes(":") ? `[${address}]:${socket!.remotePort}` : `${address}:${socket!.remotePort}`;
  }

  get requestId(): string {
    this.#requestId ??= requestIdFrom(this.header("x-request-id"));
    return this.#requestId;
  }
}

/** CallContext over a Fetch-API `Headers` object, as connect-node hands it to handlers. */
export class HeadersCallContext implements CallContext {
  span: TraceSpan | undefined;
  #requestId: string | undefined;

  constructor(
    readonly service: string,
    readonly method: string,
    readonly protocol: RpcProtocol,
    private readonly headers: Headers,
    private readonly peerOf: (() => string | undefined) | undefined,
  ) {}

  get peer(): string | undefined {
    return this.peerOf?.();
  }

  /**
   * Fetch `Headers` joins a repeated header into one value with ", ". We keep it joined rather than
   * guess where the first value ends (values may contain commas): two `authorization` headers then
   * fail to parse, which is the safe answer.
   */
  header(name: string): string | undefined {
    return this.headers.get(name) ?? undefined;
  }

  get requestId(): string {
    this.#requestId ??= requestIdFrom(this.header("x-request-id"));
    return this.#requestId;
  }
}
