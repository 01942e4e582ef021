import { createHash } from "node:crypto";
import { Agent as HttpAgent } from "node:http";
import { Agent as HttpsAgent } from "node:https";
import type { JsonObject } from "@bufbuild/protobuf";
import { type Timestamp, timestampMs } from "@bufbuild/protobuf/wkt";
import { type Client, createClient, type Interceptor, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { TokenService } from "../gen/proto/gatehouse/v1/token_service_pb.ts";
import { type RetryOptions, retryPlan, withRetry } from "./call-retry.ts";
import { rpcFailure } from "./rpc-failure.ts";
import { createSingleFlight } from "./single-flight.ts";
import { createTokenSession, type TokenSession, type TokenSessionOptions } from "./token-session.ts";

/** How the calling service authenticates to the token service. */
export type ClientCredentials =
  | { readonly clientId: string; readonly clientSecret: string }
  /**
   * A client assertion (RFC 7523), e.g. a projected Kubernetes service-account token. Called for
   * every RPC, so read the file each time: the kubelet rotates it.
   */
  | { readonly assertion: () => string | Promise<string> };

export interface TokenClientOptions {
  /**
   * The token service: its gRPC port for `grpc` (`http://gatehouse:7400`), its HTTP port for
   * `connect` (`http://gatehouse:7480`).
   */
  baseUrl: string;
  /** Default `grpc`. */
  protocol?: "grpc" | "connect";
  credentials: ClientCredentials;
  /** Per attempt. Default 10 s. */
  timeoutMs?: number;
  retry?: RetryOptions;
  /** Epoch ms, for proactive refresh. Default `Date.now`. */
  now?: () => number;
}

export interface IssueInput {
  subject: string;
  audience?: readonly string[];
  scopes?: readonly string[];
  tenant?: string;
  /** Extra claims for every access token of the session (must be in the client's allowed claims). */
  claims?: JsonObject;
}

/** A session's tokens as Issue and Refresh return them. Times are epoch ms. */
export interface TokenSet {
  readonly accessToken: string;
  readonly accessTokenExpiresAt: number;
  readonly refreshToken: string;
  readonly refreshTokenExpiresAt: number;
  readonly sessionId: string;
  readonly scopes: readonly string[];
  readonly audience: readonly string[];
}

export interface TokenClient {
  /** Starts a session for a user the calling service has authenticated. Retried while unavailable. */
  issue(input: IssueInput): Promise<TokenSet>;
  /**
   * Rotates a refresh token. Concurrent calls with the same token (and scopes) share one `Refresh`
   * RPC and its result; see the README for when it is retried.
   */
  refresh(refreshToken: string, options?: { scopes?: readonly string[] }): Promise<TokenSet>;
  /** Holds a session's tokens and refreshes them before the access token expires. */
  session(tokens: TokenSet, options?: TokenSessionOptions): TokenSession;
  /** Closes the transport's connections. */
  close(): void;
}

/**
 * A typed client of the token service's Issue and Refresh, for services that start and keep user
 * sessions. Retries only `unavailable`, with backoff; a Refresh only within `retry.refreshWindowMs`
 * of its first attempt, which must stay inside the server's grace window: a Refresh whose answer
 * was lost may have rotated the token, and only inside that window does repeating it return the
 * same successor instead of counting as reuse (which revokes the whole session).
 *
 * @example
 * const client = createTokenClient({
 *   baseUrl: "http://gatehouse:7400",
 *   credentials: { clientId: "web", clientSecret: process.env.GATEHOUSE_CLIENT_SECRET! },
 * });
 * const session = client.session(await client.issue({ subject: "alice", audience: ["orders"] }));
 * await fetch(ordersUrl, { headers: { authorization: `Bearer ${await session.accessToken()}` } });
 */
export function createTokenClient(options: TokenClientOptions): TokenClient {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const refreshPlan = retryPlan(options.retry ?? {}, "refresh");
  const otherPlan = retryPlan(options.retry ?? {}, "other");
  const now = options.now ?? Date.now;
  const { transport, close } = createTransport(options);
  const rpc: Client<typeof TokenService> = createClient(TokenService, transport);
  const refreshes = createSingleFlight<TokenSet>();

  const client: TokenClient = {
    issue(input) {
      return withRetry(
        otherPlan,
        async () =>
          tokenSet(
            await rpc.issue(
              {
                subject: input.subject,
                audience: [...(input.audience ?? [])],
                scopes: [...(input.scopes ?? [])],
                tenant: input.tenant ?? "",
                ...(input.claims === undefined ? {} : { claims: input.claims }),
              },
              { timeoutMs },
            ),
          ),
        rpcFailure,
      );
    },
    refresh(refreshToken, refreshOptions = {}) {
      const scopes = [...(refreshOptions.scopes ?? [])];
      // Keyed by hash: the map outlives nothing, but a heap dump should not list live refresh tokens.
      const key = createHash("sha256")
        .update(refreshToken)
        .update("\0")
        .update(scopes.join(" "))
        .digest("hex");
      return refreshes.run(key, () =>
        withRetry(
          refreshPlan,
          async () => tokenSet(await rpc.refresh({ refreshToken, scopes }, { timeoutMs })),
          rpcFailure,
        ),
      );
    },
    session: (tokens, sessionOpts) => createTokenSession(client, tokens, now, sessionOpts),
    close,
  };
  return client;
}

/** The transport with its own connections (an HTTP/2 session, or an HTTP/1.1 agent), so close() ends them. */
function createTransport(options: TokenClientOptions): { transport: Transport; close(): void } {
  const interceptors = [authentication(options.credentials)];
  const protocol = options.protocol ?? "grpc";
  const { baseUrl } = options;
  if (protocol === "grpc") {
    const sessionManager = new Http2SessionManager(baseUrl);
    return {
      transport: createGrpcTransport({ baseUrl, interceptors, sessionManager }),
      close: () => sessionManager.abort(),
    };
  }
  if (protocol === "connect") {
    const agent = new (baseUrl.startsWith("https:") ? HttpsAgent : HttpAgent)({ keepAlive: true });
    return {
      transport: createConnectTransport({
        baseUrl,
        httpVersion: "1.1",
        interceptors,
        nodeOptions: { agent },
      }),
      close: () => agent.destroy(),
    };
  }
  throw new TypeError(`protocol must be "grpc" or "connect", got ${String(protocol)}`);
}

function authentication(credentials: ClientCredentials): Interceptor {
  if ("assertion" in credentials) {
    if (typeof credentials.assertion !== "function")
      throw new TypeError("credentials.assertion must be a function");
    return (next) => async (req) => {
      req.header.set("x-gatehouse-client-assertion", (await credentials.assertion()).trim());
      return next(req);
    };
  }
  if (!credentials.clientId || !credentials.clientSecret) {
    throw new TypeError("credentials need clientId and clientSecret, or assertion");
  }
  const basic = `Basic ${Buffer.from(`${credentials.clientId}:${credentials.clientSecret}`).toString("base64")}`;
  return (next) => (req) => {
    req.header.set("authorization", basic);
    return next(req);
  };
}

function tokenSet(res: {
  accessToken: string;
  accessTokenExpiresAt?: Timestamp | undefined;
  refreshToken: string;
  refreshTokenExpiresAt?: Timestamp | undefined;
  sessionId: string;
  scopes: string[];
  audience: string[];
}): TokenSet {
  return Object.freeze({
    accessToken: res.accessToken,
    accessTokenExpiresAt: res.accessTokenExpiresAt ? timestampMs(res.accessTokenExpiresAt) : 0,
    refreshToken: res.refreshToken,
    refreshTokenExpiresAt: res.refreshTokenExpiresAt ? timestampMs(res.refreshTokenExpiresAt) : 0,
    sessionId: res.sessionId,
    scopes: Object.freeze([...res.scopes]),
    audience: Object.freeze([...res.audience]),
  });
}
