import type { IncomingMessage, ServerResponse } from "node:http";
import { GatehouseError } from "../shared/errors/gatehouse-error.ts";
import { denialOf, httpDenialHeaders } from "../sidecar/control/denial.ts";
import { bearerToken } from "../sidecar/verifier/bearer-token.ts";
import type { Identity, Requirement } from "../sidecar/verifier/identity.ts";

declare global {
  // Express's own declaration-merging hook: `req.auth` is typed in every Express app that imports this.
  namespace Express {
    interface Request {
      /** The verified claims, set by the Gatehouse middleware. */
      auth?: Identity;
    }
  }
}

export interface ExpressAuthOptions {
  /** A verifier from `gatehouse/verify`. */
  verifier: { verify(token: string, requirement?: Requirement): Promise<Identity> };
  /** What this route asks beyond a valid token: audiences, scopes, actors. */
  requirement?: Requirement;
  /**
   * Let requests without an `Authorization` header through with `req.auth` unset (a bad token is
   * still refused). Default false.
   */
  optional?: boolean;
}

/** Any request Express (or plain node:http) hands a middleware; `auth` is what this one adds. */
export type AuthRequest = IncomingMessage & { auth?: Identity };

/**
 * Express middleware (also plain `node:http`: it uses nothing but the Node request and response):
 * verifies the bearer token and puts its claims in `req.auth`. A refusal is answered at once with
 * the sidecar's answer: 401 (or 403 for `insufficient_scope`), an RFC 6750 `WWW-Authenticate`
 * challenge naming the reason, and `{"error": code, "message": ...}`.
 *
 * @example
 * app.get("/orders", gatehouseAuth({ verifier, requirement: { scopes: { allOf: ["orders:read"] } } }),
 *   (req, res) => res.json({ user: req.auth!.subject }));
 */
export function gatehouseAuth(
  options: ExpressAuthOptions,
): (req: AuthRequest, res: ServerResponse, next: (err?: unknown) => void) => void {
  const { verifier, requirement, optional = false } = options;
  if (typeof verifier?.verify !== "function") throw new TypeError("verifier is required");
  return (req, res, next) => {
    let token: string;
    try {
      if (optional && req.headers.authorization === undefined) {
        next();
        return;
      }
      token = bearerToken(req.headers.authorization);
    } catch (err) {
      refuse(res, err);
      return;
    }
    verifier.verify(token, requirement).then(
      (identity) => {
        req.auth = identity;
        next();
      },
      (err: unknown) => refuse(res, err),
    );
  };
}

function refuse(res: ServerResponse, err: unknown): void {
  const denial = denialOf(GatehouseError.from(err));
  res.writeHead(denial.httpStatus, httpDenialHeaders(denial));
  res.end(denial.body);
}
