import { randomUUID } from "node:crypto";
import { isIP } from "node:net";
import type { MessageInitShape, MessageShape } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type {
  IssueRequestSchema,
  IssueResponseSchema,
  IssueServiceTokenRequestSchema,
  IssueServiceTokenResponseSchema,
} from "../../gen/proto/gatehouse/v1/token_service_pb.ts";
import { GatehouseError } from "../../shared/errors/gatehouse-error.ts";
import type { ClientRecord } from "../clients/client-record.ts";
import { buildAccessTokenClaims, checkCustomClaims } from "../tokens/access-token-claims.ts";
import { generateRefreshToken, hashRefreshToken } from "../tokens/refresh-token-format.ts";
import { accessTokenTtlSeconds } from "./access-token-lifetime.ts";
import { checkSubjectAndTenant } from "./client-allow-lists.ts";
import type { Caller, FlowDeps } from "./flow-deps.ts";
import { checkList, checkText, LIMITS } from "./request-limits.ts";

/** Audiences and scopes asked for, each within what the client may request. */
function grantedAudienceAndScopes(
  client: ClientRecord,
  audienceIn: readonly string[],
  scopesIn: readonly string[],
): { audience: string[]; scopes: string[] } {
  const requested = checkList("audience", audienceIn, LIMITS.audienceItems, LIMITS.audience);
  const scopes = checkList("scopes", scopesIn, LIMITS.scopeItems, LIMITS.scope);
  // No audience asked for means every audience the client may address.
  const audience = requested.length > 0 ? requested : [...client.allowedAudiences];
  if (audience.length === 0)
    throw new GatehouseError("invalid_request", "audience is required", { metadata: { field: "audience" } });
  const badAudience = audience.filter((a) => !client.allowedAudiences.includes(a));
  if (badAudience.length > 0) {
    throw new GatehouseError(
      "audience_not_allowed",
      `audience not allowed for this client: ${badAudience.join(" ")}`,
      {
        metadata: { audience: badAudience.join(" ") },
      },
    );
  }
  const badScopes = scopes.filter((s) => !client.allowedScopes.includes(s));
  if (badScopes.length > 0) {
    throw new GatehouseError(
      "scope_not_allowed",
      `scopes not allowed for this client: ${badScopes.join(" ")}`,
      {
        metadata: { scope: badScopes.join(" ") },
      },
    );
  }
  return { audience, scopes };
}

/** IPv4 or IPv6 characters only (no zone id): `isIP` alone would take `fe80::1%eth0`. */
const IP_CHARACTERS = /^[0-9a-fA-F.:]{2,45}$/;
const isIpAddress = (text: string) => IP_CHARACTERS.test(text) && isIP(text) !== 0;

/** Issue: a new session with its first refresh token, and an access token for it. */
export async function issue(
  deps: FlowDeps,
  caller: Caller,
  req: MessageShape<typeof IssueRequestSchema>,
): Promise<MessageInitShape<typeof IssueResponseSchema>> {
  const client = caller.client;
  const subject = checkText("subject", req.subject, LIMITS.subject, { required: true });
  const tenant = checkText("tenant", req.tenant, LIMITS.tenant);
  checkSubjectAndTenant(client, subject, tenant || null);
  const { audience, scopes } = grantedAudienceAndScopes(client, req.audience, req.scopes);
  const custom =
    req.claims && Object.keys(req.claims).length > 0 ? (req.claims as Record<string, unknown>) : null;
  if (custom) checkCustomClaims(custom, client.allowedClaims);
  const device = {
    userAgent: checkText("device.user_agent", req.device?.userAgent ?? "", LIMITS.deviceField) || null,
    ipAddress: checkText("device.ip_address", req.device?.ipAddress ?? "", 45) || null,
    name: checkText("device.name", req.device?.name ?? "", 128) || null,
  };
  if (device.ipAddress !== null && !isIpAddress(device.ipAddress)) {
    throw new GatehouseError("invalid_request", "device.ip_address is not an IP address", {
      metadata: { field: "device.ip_address" },
    });
  }

  const now = deps.now();
  const key = deps.keys.active();
  const sessionId = randomUUID();
  const macKey = deps.macKeys.active();
  const refreshToken = generateRefreshToken(sessionId, macKey);
  const idleExpiresAt = now + client.refreshIdleTtlSeconds * 1000;
  const expiresAt = now + client.refreshAbsoluteTtlSeconds * 1000;
  const ttl = accessTokenTtlSeconds(client.accessTokenTtlSeconds, deps.maxAccessTokenTtlSeconds);
  const nowSeconds = Math.floor(now / 1000);

  // Signed before the row is written: a key that fails to sign must leave no session behind that
  // no client holds. Signing while the insert was in flight saved nothing measurable (paired runs:
  // Issue/s 1.02x, service CPU 0.99x for this order).
  const accessToken = key.sign(
    buildAccessTokenClaims({
      issuer: deps.issuer,
      subject,
      audience,
      clientId: client.id,
      scopes,
      sessionId,
      sessionVersion: 1,
      tenant: tenant || null,
      custom,
      jti: randomUUID(),
      nowSeconds,
      ttlSeconds: ttl,
    }),
  );
  await deps.store.createSession({
    sessionId,
    subject,
    clientId: client.id,
    tenant: tenant || null,
    scopes,
    audience,
    claims: custom,
    signingKid: key.kid,
    now: new Date(now),
    idleExpiresAt: new Date(idleExpiresAt),
    expiresAt: new Date(expiresAt),
    device,
    refreshTokenHash: hashRefreshToken(refreshToken),
    refreshMacKid: macKey.kid,
  });
  return {
    accessToken,
    accessTokenExpiresAt: timestampFromMs((nowSeconds + ttl) * 1000),
    refreshToken,
    refreshTokenExpiresAt: timestampFromMs(Math.min(idleExpiresAt, expiresAt)),
    sessionId,
    tokenType: "Bearer",
    scopes,
    audience,
  };
}

/** IssueServiceToken: the calling service's own identity; no session, no refresh token. */
export async function issueServiceToken(
  deps: FlowDeps,
  caller: Caller,
  req: MessageShape<typeof IssueServiceTokenRequestSchema>,
): Promise<MessageInitShape<typeof IssueServiceTokenResponseSchema>> {
  const client = caller.client;
  const { audience, scopes } = grantedAudienceAndScopes(client, req.audience, req.scopes);
  const nowSeconds = Math.floor(deps.now() / 1000);
  const ttl = accessTokenTtlSeconds(client.accessTokenTtlSeconds, deps.maxAccessTokenTtlSeconds);
  const accessToken = deps.keys.active().sign(
    buildAccessTokenClaims({
      issuer: deps.issuer,
      subject: client.id,
      audience,
      clientId: client.id,
      scopes,
      jti: randomUUID(),
      nowSeconds,
      ttlSeconds: ttl,
    }),
  );
  return {
    accessToken,
    accessTokenExpiresAt: timestampFromMs((nowSeconds + ttl) * 1000),
    tokenType: "Bearer",
    scopes,
  };
}
