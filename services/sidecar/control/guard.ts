import { GatehouseError } from "../../shared/errors/gatehouse-error.ts";
import { fingerprint } from "../../shared/logging/fingerprint.ts";
import { type CanonicalPathOptions, canonicalPath, isCanonical } from "../policy/canonical-path.ts";
import type { Policy, Rule } from "../policy/compile-policy.ts";
import { bearerToken } from "../verifier/bearer-token.ts";
import type { Verifier } from "../verifier/create-verifier.ts";
import type { Identity } from "../verifier/identity.ts";
import type { DecisionMetrics, GuardMode } from "./decision-metrics.ts";
import { type Denial, denialOf } from "./denial.ts";

type HeaderValue = string | readonly string[] | undefined;

export interface GuardRequest {
  /** HTTP method of the request being authorized. */
  readonly method: string;
  /** Request target as received: origin-form path with optional query (or absolute-form). */
  readonly target: string;
  readonly authorization: HeaderValue;
  /**
   * Refuse (400 `invalid_request`) a path that is not already canonical (but for the letter case of
   * its escapes). For ext_authz and forward-auth, where the sidecar cannot rewrite what reaches the
   * app: the path the rule judged must be the path the app will see. The proxy instead forwards the
   * canonical path.
   */
  readonly requireNormalPath?: boolean;
}

export type GuardResult =
  | {
      readonly allowed: true;
      /** Null on a public route without a valid token. */
      readonly identity: Identity | null;
      /** The canonical path (no query) to forward; the rule judged it (allowed `%2F` read as `/`). */
      readonly path: string;
      readonly rule: Rule;
    }
  | { readonly allowed: false; readonly denial: Denial; readonly rule: Rule | undefined };

export interface Guard {
  check(request: GuardRequest, mode: GuardMode): Promise<GuardResult>;
}

/** The subset of a pino logger the guard uses. */
interface GuardLogger {
  isLevelEnabled(level: string): boolean;
  debug(obj: object, msg: string): void;
}

export interface GuardOptions {
  verifier: Verifier;
  /** The policy in force, read on every request (a reload swaps it between two requests). */
  policy: () => Policy;
  metrics: DecisionMetrics;
  logger: GuardLogger;
  /** Path length cap and encoded-slash handling (sidecar settings). */
  paths: CanonicalPathOptions;
}

/**
 * The one decision the proxy, ext_authz and forward-auth share: compute the request's canonical path
 * (or refuse an ambiguous one), find the route's rule for it, take the bearer token, verify it
 * against the rule, count the outcome by reason and entry point. Refusals are logged at debug level
 * with the token's fingerprint, never the token.
 *
 * Which rules apply is not left to the caller: every request, whatever its content type, is judged
 * by `grpc:` rules first and then by path rules, on the same canonical path the app receives — so
 * neither a content type nor a spelling of the path picks a weaker rule.
 */
export function createGuard(options: GuardOptions): Guard {
  const { verifier, metrics, logger, paths } = options;

  function refuse(
    mode: GuardMode,
    started: number,
    err: unknown,
    rule: Rule | undefined,
    token: string | undefined,
  ): GuardResult {
    const error = GatehouseError.from(err);
    metrics.decision(mode, error.code, (performance.now() - started) / 1000);
    if (logger.isLevelEnabled("debug")) {
      logger.debug(
        {
          mode,
          reason: error.code,
          rule: rule?.id,
          tokenFingerprint: token === undefined ? undefined : fingerprint(token),
          err: error.code === "internal" ? error.cause : undefined,
        },
        "request refused",
      );
    }
    return { allowed: false, denial: denialOf(error), rule };
  }

  return {
    async check(request, mode) {
      const started = performance.now();
      const canonical = canonicalPath(request.target, paths);
      if (!canonical.ok) {
        const error = new GatehouseError(canonical.code, canonical.message);
        return refuse(mode, started, error, undefined, undefined);
      }
      const { path } = canonical;
      if (request.requireNormalPath === true && !isCanonical(pathOf(request.target), path)) {
        const error = new GatehouseError("invalid_request", "the request path is not in canonical form");
        return refuse(mode, started, error, undefined, undefined);
      }
      let rule: Rule | undefined;
      let token: string | undefined;
      try {
        rule = options.policy().match({
          method: request.method,
          path: canonical.judgedPath,
          forwardedPath: canonical.path,
        });
        if (rule.public) {
          let identity: Identity | null = null;
          if (request.authorization !== undefined) {
            // A public route serves everyone; a valid token still tells the app who is calling.
            // Other credentials (Basic, for the app itself) are the app's business, not a refusal.
            const presented = bearerTokenOrUndefined(request.authorization);
            if (presented !== undefined) {
              identity = await verifier.verify(presented, rule.requirement).catch(() => null);
            }
          }
          metrics.decision(mode, identity === null ? "public" : "ok", (performance.now() - started) / 1000);
          return { allowed: true, identity, path, rule };
        }
        token = bearerToken(request.authorization);
        const identity = await verifier.verify(token, rule.requirement);
        metrics.decision(mode, "ok", (performance.now() - started) / 1000);
        return { allowed: true, identity, path, rule };
      } catch (err) {
        return refuse(mode, started, err, rule, token);
      }
    },
  };
}

function bearerTokenOrUndefined(authorization: HeaderValue): string | undefined {
  try {
    return bearerToken(authorization);
  } catch {
    return undefined;
  }
}

/** The path part of a request target (query and fragment cut off). */
export function pathOf(target: string): string {
  const end = target.search(/[?#]/);
  return end === -1 ? target : target.slice(0, end);
}

/** The query part of a request target, with its `?`, or "". */
export function queryOf(target: string): string {
  const q = target.indexOf("?");
  if (q === -1) return "";
  const hash = target.indexOf("#", q);
  return hash === -1 ? target.slice(q) : target.slice(q, hash);
}

export { bearerToken } from "../verifier/bearer-token.ts";
