import { create } from "@bufbuild/protobuf";
import { IntrospectRequestSchema } from "../../gen/proto/gatehouse/v1/token_service_pb.ts";
import { introspect } from "../flows/introspect-flow.ts";
import { clientAuthentication } from "./client-authentication.ts";
import { readFormBody } from "./form-body.ts";
import {
  INTROSPECTION_JWT_TYPE,
  introspectionJwtClaims,
  rfc7662Response,
  wantsIntrospectionJwt,
} from "./introspection-response.ts";
import { authenticateClient, type OAuthDeps } from "./oauth-deps.ts";
import { type OAuthHandler, sendOAuthJson } from "./oauth-endpoint.ts";

/**
 * `POST /oauth2/introspect` (RFC 7662): the Introspect flow, answered as JSON, or as a JWT signed
 * with the active key when the caller accepts `application/token-introspection+jwt` (RFC 9701).
 */
export function introspectionEndpoint(deps: OAuthDeps): OAuthHandler {
  return async (ctx, req, res) => {
    const form = await readFormBody(req);
    const auth = clientAuthentication(req, form);
    const request = create(IntrospectRequestSchema, {
      token: form.get("token") ?? "",
      tokenTypeHint: form.get("token_type_hint") ?? "",
    });
    const { answer, callerId } = await deps.gate(
      "Introspect",
      authenticateClient(deps, auth),
      ctx.requestId,
      async (caller) => ({
        answer: rfc7662Response(await introspect(deps, caller, request), deps.issuer),
        callerId: caller.client.id,
      }),
    );
    if (!wantsIntrospectionJwt(req.headers.accept)) {
      sendOAuthJson(res, answer);
      return;
    }
    const jwt = deps.keys
      .active()
      .signIntrospection(introspectionJwtClaims(answer, deps.issuer, callerId, deps.now()));
    res.writeHead(200, {
      "content-type": INTROSPECTION_JWT_TYPE,
      "content-length": Buffer.byteLength(jwt),
      "cache-control": "no-store",
      pragma: "no-cache",
    });
    res.end(jwt);
  };
}
