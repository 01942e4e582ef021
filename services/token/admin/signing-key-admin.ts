import type { DescMessage, MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import {
  type ActivateSigningKeyRequest,
  type ActivateSigningKeyResponseSchema,
  type CreateSigningKeyRequest,
  type CreateSigningKeyResponseSchema,
  type ListSigningKeysRequest,
  type ListSigningKeysResponseSchema,
  type RetireSigningKeyRequest,
  type RetireSigningKeyResponseSchema,
  type RevokeSigningKeyRequest,
  type RevokeSigningKeyResponseSchema,
  type RotateSigningKeysRequest,
  type RotateSigningKeysResponseSchema,
  SigningAlgorithm,
} from "../../gen/proto/gatehouse/v1/admin_service_pb.ts";
import { GatehouseError } from "../../shared/errors/gatehouse-error.ts";
import { recordAudit } from "../audit/audit-record.ts";
import { checkText, LIMITS } from "../flows/request-limits.ts";
import type { SigningAlgorithm as AlgorithmName } from "../keys/signing-key-material.ts";
import type { AdminCaller, AdminDeps } from "./admin-deps.ts";
import { ALGORITHM_BY_ENUM, signingKeyMessage } from "./admin-messages.ts";

type Reply<S extends DescMessage> = Promise<MessageInitShape<S>>;

function invalid(field: string, problem: string): GatehouseError {
  return new GatehouseError("invalid_request", `${field} ${problem}`, { metadata: { field } });
}

function algorithmOf(value: SigningAlgorithm): AlgorithmName | undefined {
  if (value === SigningAlgorithm.UNSPECIFIED) return undefined;
  const name = ALGORITHM_BY_ENUM.get(value);
  if (!name) throw invalid("algorithm", `has an unknown value (${value})`);
  return name;
}

/** A kid as we mint them: an RFC 7638 SHA-256 thumbprint, base64url. */
function checkKid(kid: string): string {
  if (kid === "") throw invalid("kid", "is required");
  if (!/^[A-Za-z0-9_-]{1,128}$/.test(kid)) throw invalid("kid", "is not a key id");
  return kid;
}

/** Keys changed: this replica serves the new JWKS (and signs with a new key) now, not at its next poll. */
async function reloaded<T>(deps: AdminDeps, result: T): Promise<T> {
  await deps.keys.reload();
  return result;
}

export async function createSigningKey(
  deps: AdminDeps,
  caller: AdminCaller,
  req: CreateSigningKeyRequest,
): Reply<typeof CreateSigningKeyResponseSchema> {
  const algorithm = algorithmOf(req.algorithm) ?? "EdDSA";
  if (algorithm !== "RS256" && req.rsaBits !== 0) throw invalid("rsa_bits", "is only for RS256 keys");
  const rsaBits = req.rsaBits === 0 ? 2048 : req.rsaBits;
  if (rsaBits !== 2048 && rsaBits !== 3072) throw invalid("rsa_bits", "must be 2048 or 3072");
  const key = await deps.signingKeys.create({ algorithm, rsaBits }, caller.by);
  return reloaded(deps, { key: signingKeyMessage(key) });
}

export async function activateSigningKey(
  deps: AdminDeps,
  caller: AdminCaller,
  req: ActivateSigningKeyRequest,
): Reply<typeof ActivateSigningKeyResponseSchema> {
  const { key, previous } = await deps.signingKeys.activate(
    checkKid(req.kid),
    { force: req.force },
    caller.by,
  );
  return reloaded(deps, {
    key: signingKeyMessage(key),
    ...(previous ? { previousKey: signingKeyMessage(previous) } : {}),
  });
}

export async function retireSigningKey(
  deps: AdminDeps,
  caller: AdminCaller,
  req: RetireSigningKeyRequest,
): Reply<typeof RetireSigningKeyResponseSchema> {
  const key = await deps.signingKeys.retire(checkKid(req.kid), caller.by);
  return reloaded(deps, { key: signingKeyMessage(key) });
}

export async function revokeSigningKey(
  deps: AdminDeps,
  caller: AdminCaller,
  req: RevokeSigningKeyRequest,
): Reply<typeof RevokeSigningKeyResponseSchema> {
  const reason = checkText("reason", req.reason, LIMITS.reason) || "revoked by admin";
  const revocation = await deps.signingKeys.revoke(checkKid(req.kid), reason, caller.by);
  await deps.keys.reload();
  const { eventId } = revocation;
  const propagated = eventId === null ? true : await deps.publish([eventId]).catch(() => false);
  deps.log.warn(
    {
      requestId: caller.requestId,
      kid: revocation.key.kid,
      liveSessionsSigned: revocation.liveSessionsSigned,
      activated: revocation.activated?.kid,
      propagated,
    },
    "signing key revoked",
  );
  return {
    key: signingKeyMessage(revocation.key),
    liveSessionsSigned: revocation.liveSessionsSigned,
    propagated,
    ...(revocation.activated ? { activatedKey: signingKeyMessage(revocation.activated) } : {}),
  };
}

export async function listSigningKeys(
  deps: AdminDeps,
  req: ListSigningKeysRequest,
): Reply<typeof ListSigningKeysResponseSchema> {
  const keys = await deps.signingKeys.list({ includeRetired: req.includeRetired });
  return { keys: keys.map(signingKeyMessage) };
}

export async function rotateSigningKeys(
  deps: AdminDeps,
  caller: AdminCaller,
  req: RotateSigningKeysRequest,
): Reply<typeof RotateSigningKeysResponseSchema> {
  const algorithm = algorithmOf(req.algorithm);
  const result = await deps.signingKeys.rotate(
    { schedule: true, force: req.force, ...(algorithm ? { algorithm } : {}) },
    caller.by,
  );
  if (result.staged || result.activated || result.retired.length > 0) await deps.keys.reload();
  // Each transition has its own row already; this one records that an admin asked, even for nothing.
  await recordAudit(deps.prisma, {
    ...caller.by,
    at: new Date(deps.now()),
    action: "signing_key.rotate",
    targetType: "signing_key",
    targetId: result.activated?.kid ?? result.staged?.kid,
    outcome: "success",
    details: {
      force: req.force,
      staged: result.staged?.kid ?? null,
      activated: result.activated?.kid ?? null,
      retired: result.retired.map((k) => k.kid),
    },
  });
  return {
    ...(result.staged ? { staged: signingKeyMessage(result.staged) } : {}),
    ...(result.activated ? { activated: signingKeyMessage(result.activated) } : {}),
    ...(result.retiring ? { retiring: signingKeyMessage(result.retiring) } : {}),
    retired: result.retired.map(signingKeyMessage),
    ...(result.nextRotationAt !== null ? { nextRotationAt: timestampFromMs(result.nextRotationAt) } : {}),
    ...(result.waiting
      ? {
          waiting: signingKeyMessage(result.waiting.key),
          waitingActivatableAt: timestampFromMs(result.waiting.activatableAt),
        }
      : {}),
  };
}
