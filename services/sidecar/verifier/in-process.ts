import { type Code, ConnectError, createContextKey, type Interceptor } from "@connectrpc/connect";
import { ErrorInfoSchema } from "../../gen/proto/google/rpc/error_details_pb.ts";
import { ERROR_DOMAIN, GatehouseError } from "../../shared/errors/gatehouse-error.ts";
import { grpcCodeOf } from "../../shared/errors/status-map.ts";
import { canonicalPath, DEFAULT_MAX_PATH_LENGTH, isCanonical, rawPathOf } from "../policy/canonical-path.ts";
import { defaultPolicy, type Policy, type PolicyRequest } from "../policy/compile-policy.ts";
import { bearerToken } from "./bearer-token.ts";
import type { Verifier } from "./create-verifier.ts";
import type { Identity } from "./identity.ts";

/** A compiled policy, or a function returning the one in force (e.g. `watcher.current`). */
export type PolicySource = Policy | (() => Policy);

export interface AuthenticatorOptions {
  verifier: Verifier;
  /** Default: every route needs a valid token, no scopes. */
  policy?: PolicySource;
}

type HeaderValue = string | readonly string[] | null | undefined;

export interface RequestLike {
  readonly method?: string | undefined;
  /** Origin-form (`/a/b?c`) or absolute URL; `path` wins when both are given. */
  readonly url?: string | undefined;
  readonly path?: string | undefined;
  readonly headers: { get(name: string): string | null } | Readonly<Record<string, HeaderValue>>;
}

/**
 * Authenticates a request the way the sidecar would, for apps that verify in process: finds the
 * route's rule for the canonical path, then verifies the bearer token against it. Resolves with the
 * Identity; on a public route with no valid token, with null. Rejects with a GatehouseError
 * otherwise, among them the sidecar's path refusals, and `invalid_request` for a path that is not
 * canonical: the app routes the path as it came, so that must be the path the rule judged.
 *
 * @example
 * const authenticate = createRequestAuthenticator({ verifier, policy: watcher.current });
 * const identity = await authenticate(req); // node:http IncomingMessage, fetch Request, …
 */
export function createRequestAuthenticator(
  options: AuthenticatorOptions,
): (req: RequestLike) => Promise<Identity | null> {
  const policyOf = policyGetter(options.policy);
  return (req) => {
    const target = req.path ?? req.url ?? "/";
    const canonical = canonicalPath(target, {
      maxLength: DEFAULT_MAX_PATH_LENGTH,
      allowEncodedSlashes: false,
    });
    if (!canonical.ok) return Promise.reject(new GatehouseError(canonical.code, canonical.message));
    if (!isCanonical(rawPathOf(target), canonical.path)) {
      return Promise.reject(
        new GatehouseError("invalid_request", "the request path is not in canonical form"),
      );
    }
    const authorization = readHeader(req.headers, "authorization");
    const request = { method: req.method ?? "GET", path: canonical.judgedPath };
    return authenticate(options.verifier, policyOf(), request, authorization);
  };
}

/** The verified caller, set by {@link createAuthInterceptor}; undefined on public methods without a token. */
export const identityKey = createContextKey<Identity | undefined>(undefined, {
  description: "gatehouse identity",
});

/**
 * A Connect server interceptor with the same rules: gRPC method `/pkg.Service/Method` judged as a
 * POST of that path (so `grpc:` rules first), the verified Identity in `context.values.get(identityKey)`, failures as
 * ConnectError (UNAUTHENTICATED, or PERMISSION_DENIED for `insufficient_scope`) carrying a
 * `google.rpc.ErrorInfo` whose reason is the Gatehouse error code.
 */
export function createAuthInterceptor(options: AuthenticatorOptions): Interceptor {
  const policyOf = policyGetter(options.policy);
  return (next) => async (req) => {
    const path = `/${req.service.typeName}/${req.method.name}`;
    let identity: Identity | null;
    try {
      identity = await authenticate(
        options.verifier,
        policyOf(),
        { method: "POST", path },
        req.header.get("authorization"),
      );
    } catch (err) {
      throw toConnectError(err);
    }
    if (identity !== null) req.contextValues.set(identityKey, identity);
    return next(req);
  };
}

/** The code both entry points share: rule, then token, then verification. */
async function authenticate(
  verifier: Verifier,
  policy: Policy,
  request: PolicyRequest,
  authorization: HeaderValue,
): Promise<Identity | null> {
  const rule = policy.match(request);
  if (rule.public) {
    // A public route serves everyone; a valid token still tells the app who is calling.
    try {
      return await verifier.verify(bearerToken(authorization), rule.requirement);
    } catch {
      return null;
    }
  }
  return verifier.verify(bearerToken(authorization), rule.requirement);
}

export function toConnectError(err: unknown): ConnectError {
  if (err instanceof ConnectError) return err;
  const error = GatehouseError.from(err);
  const detail = {
    desc: ErrorInfoSchema,
    value: { reason: error.code, domain: ERROR_DOMAIN, metadata: { ...error.metadata } },
  };
  const message = error.code === "internal" ? "internal error" : error.message;
  return new ConnectError(message, grpcCodeOf(error.code) as number as Code, undefined, [detail], error);
}

function policyGetter(source: PolicySource | undefined): () => Policy {
  if (source === undefined) {
    const fallback = defaultPolicy();
    return () => fallback;
  }
  return typeof source === "function" ? source : () => source;
}

function readHeader(headers: RequestLike["headers"], name: string): HeaderValue {
  if (typeof (headers as { get?: unknown }).get === "function") {
    return (headers as { get(name: string): string | null }).get(name);
  }
  const record = headers as Readonly<Record<string, HeaderValue>>;
  const direct = record[name];
  if (direct !== undefined) return direct;
  for (const key of Object.keys(record)) if (key.toLowerCase() === name) return record[key];
  return undefined;
}

export { bearerToken } from "./bearer-token.ts";
