import type { IncomingHttpHeaders, OutgoingHttpHeaders } from "node:http";
import { isGatehouseHeader } from "../control/identity-headers.ts";

/**
 * Headers that describe one connection, not the message (RFC 9110 §7.6.1), plus the ones HTTP/2
 * forbids outright (RFC 9113 §8.2.2) and `expect`, which the first hop has already answered.
 */
const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "proxy-authenticate",
  "proxy-authorization",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "http2-settings",
  "expect",
  "host",
]);

export interface RequestHeaderOptions {
  /** Drop `authorization` too (it has been verified; the app gets the identity headers instead). */
  stripAuthorization: boolean;
  /** A WebSocket handshake: keep `Upgrade: websocket` and `Connection: upgrade`. */
  websocket?: boolean;
  /** The immediate peer's address: `x-forwarded-for` (appended to, from a trusted proxy). */
  remoteAddress: string | undefined;
  /** `host` (HTTP/1.1) or `:authority` (HTTP/2) as the caller sent it. */
  authority: string | undefined;
  /** Whether a peer is a proxy whose `x-forwarded-*` and `forwarded` headers may be believed. */
  trustedProxy: (address: string) => boolean;
}

/** Who the caller is and how it came, as far as proxies before us say: ours to set (RFC 7239). */
const FORWARDING = new Set(["x-forwarded-for", "x-forwarded-host", "x-forwarded-proto", "forwarded"]);

/**
 * The caller's request headers as they may travel on: without hop-by-hop headers (those named in
 * `Connection` included), HTTP/2 pseudo-headers, `host` (the upstream side sets it) and every
 * `x-gatehouse-*` header, which only the sidecar may set; `te` survives only as `trailers`
 * (gRPC needs it). `x-forwarded-for`/`-host`/`-proto` are set from the connection — the peer's
 * address, the caller's authority, `http` — and the caller's `forwarded` dropped, unless the peer
 * is a trusted proxy: then `x-forwarded-for` and `forwarded` are appended to and the caller's
 * host and proto kept. A caller could otherwise name any address, host or scheme for itself to an
 * app that logs, rate-limits or builds URLs from them.
 */
export function requestHeadersForUpstream(
  headers: IncomingHttpHeaders,
  options: RequestHeaderOptions,
): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  const listed = connectionListed(headers.connection);
  for (const name in headers) {
    if (name.charCodeAt(0) === 58 /* ":" */ || HOP_BY_HOP.has(name) || isGatehouseHeader(name)) continue;
    if (listed?.has(name) || FORWARDING.has(name)) continue;
    if (name === "authorization" && options.stripAuthorization) continue;
    out[name] = headers[name];
  }
  const te = headers.te;
  if (te !== undefined && /(?:^|,)\s*trailers\s*(?:,|;|$)/i.test(String(te))) out.te = "trailers";
  if (options.websocket === true) {
    out.connection = "upgrade";
    out.upgrade = headers.upgrade;
  }
  const peer = options.remoteAddress;
  const trusted = peer !== undefined && options.trustedProxy(peer);
  const priorFor = trusted ? headers["x-forwarded-for"] : undefined;
  if (peer !== undefined) out["x-forwarded-for"] = priorFor === undefined ? peer : `${priorFor}, ${peer}`;
  const proto = trusted ? headers["x-forwarded-proto"] : undefined;
  out["x-forwarded-proto"] = proto ?? "http";
  const host = (trusted ? headers["x-forwarded-host"] : undefined) ?? options.authority;
  if (host !== undefined) out["x-forwarded-host"] = host;
  if (trusted && headers.forwarded !== undefined) {
    out.forwarded = `${headers.forwarded}, ${forwardedFor(peer)}`;
  }
  return out;
}

/** An RFC 7239 `for=` element; IPv6 addresses go quoted in brackets. */
function forwardedFor(address: string): string {
  return address.includes(":") ? `for="[${address}]"` : `for=${address}`;
}

/** The app's response headers as they may go back: hop-by-hop and pseudo-headers dropped. */
export function responseHeadersForCaller(headers: IncomingHttpHeaders): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  const listed = connectionListed(headers.connection);
  for (const name in headers) {
    if (name.charCodeAt(0) === 58 || (HOP_BY_HOP.has(name) && name !== "trailer")) continue;
    if (listed?.has(name)) continue;
    const value = headers[name];
    if (value !== undefined) out[name] = value;
  }
  return out;
}

/** Trailers as they may go on: pseudo-headers and hop-by-hop names dropped. */
export function forwardableTrailers(
  trailers: IncomingHttpHeaders | undefined,
): OutgoingHttpHeaders | undefined {
  if (trailers === undefined) return undefined;
  let out: OutgoingHttpHeaders | undefined;
  for (const name in trailers) {
    if (name.charCodeAt(0) === 58 || HOP_BY_HOP.has(name)) continue;
    const value = trailers[name];
    if (value === undefined) continue;
    out ??= {};
    out[name] = value;
  }
  return out;
}

/**
 * The caller's request trailers as they may go on to the app: as `forwardableTrailers`, and without
 * what must never arrive unverified or late (RFC 9110 §6.5.1): `x-gatehouse-*` (only the sidecar
 * speaks for the caller's identity), `authorization` (a credential the sidecar never checked) and
 * framing fields.
 */
export function requestTrailersForUpstream(
  trailers: IncomingHttpHeaders | undefined,
): OutgoingHttpHeaders | undefined {
  const forwardable = forwardableTrailers(trailers);
  if (forwardable === undefined) return undefined;
  let out: OutgoingHttpHeaders | undefined;
  for (const name in forwardable) {
    if (isGatehouseHeader(name) || NOT_IN_REQUEST_TRAILERS.has(name)) continue;
    out ??= {};
    out[name] = forwardable[name];
  }
  return out;
}

const NOT_IN_REQUEST_TRAILERS = new Set([
  "authorization",
  "content-length",
  "content-encoding",
  "content-type",
]);

function connectionListed(connection: string | string[] | undefined): Set<string> | undefined {
  if (connection === undefined) return undefined;
  const names = new Set<string>();
  for (const part of String(connection).split(",")) {
    const name = part.trim().toLowerCase();
    if (name !== "" && name !== "close" && name !== "keep-alive") names.add(name);
  }
  return names.size === 0 ? undefined : names;
}

/** gRPC (and gRPC-Web) by content type. */
export function isGrpcContentType(contentType: string | string[] | undefined): boolean {
  return typeof contentType === "string" && contentType.toLowerCase().startsWith("application/grpc");
}
