import type {
  CreateClientRequest,
  UpdateClientRequest,
} from "../../gen/proto/gatehouse/v1/admin_service_pb.ts";
import { GatehouseError } from "../../shared/errors/gatehouse-error.ts";
import { importJwks } from "../../sidecar/jwks/jwk-import.ts";
import { jwksUrlProblem } from "../assertions/jwks-url-policy.ts";

/**
 * A client's trust sources for assertions (RFC 7523) as stored, and the rules an admin's request
 * must pass to set them. Pure but for `checkClientKeys`, which imports the keys.
 */
export interface ClientTrust {
  jwks: string | null;
  jwksUri: string | null;
  federatedIssuer: string | null;
  federatedSubject: string | null;
}

type TrustFields = Pick<CreateClientRequest, "jwks" | "jwksUri" | "federatedIssuer" | "federatedSubject">;

/** The update_mask paths of the trust fields. */
export const TRUST_FIELDS: readonly string[] = ["jwks", "jwks_uri", "federated_issuer", "federated_subject"];

const MAX_JWKS_BYTES = 16 * 1024;
const MAX_KEYS = 16;
/** Members only a private or symmetric JWK has: registering one would hand us (or leak) a secret. */
const PRIVATE_MEMBERS = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is refused
const CONTROL = /[\u0000-\u001f\u007f]/;

function invalid(field: string, problem: string): GatehouseError {
  return new GatehouseError("invalid_request", `${field} ${problem}`, { metadata: { field } });
}

function jwks(text: string): string | null {
  if (text === "") return null;
  if (Buffer.byteLength(text) > MAX_JWKS_BYTES)
    throw invalid("jwks", `must be at most ${MAX_JWKS_BYTES} bytes`);
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw invalid("jwks", "is not JSON");
  }
  const keys = (doc as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(keys) || keys.length === 0 || keys.length > MAX_KEYS) {
    throw invalid("jwks", `must be a JWK Set: {"keys": [...]} with 1-${MAX_KEYS} keys`);
  }
  for (const key of keys) {
    const leaked = PRIVATE_MEMBERS.filter((m) => (key as Record<string, unknown>)?.[m] !== undefined);
    if (leaked.length > 0) {
      throw invalid("jwks", `holds private key material (${leaked.join(", ")}): register public keys only`);
    }
  }
  return text;
}

function jwksUri(value: string): string | null {
  if (value === "") return null;
  const problem = jwksUrlProblem(value);
  if (problem !== null) throw invalid("jwks_uri", problem);
  return value;
}

function issuer(value: string, trusted: readonly string[]): string | null {
  if (value === "") return null;
  if (!trusted.includes(value)) {
    throw invalid(
      "federated_issuer",
      "is not one of this server's trusted issuers (GATEHOUSE_TRUSTED_ISSUERS)",
    );
  }
  return value;
}

function subject(value: string): string | null {
  if (value === "") return null;
  if (value.length > 256 || CONTROL.test(value)) {
    throw invalid("federated_subject", "must be 1-256 characters without control characters");
  }
  return value;
}

const SETTERS: Record<string, (f: TrustFields, trusted: readonly string[]) => Partial<ClientTrust>> = {
  jwks: (f) => ({ jwks: jwks(f.jwks) }),
  jwks_uri: (f) => ({ jwksUri: jwksUri(f.jwksUri) }),
  federated_issuer: (f, trusted) => ({ federatedIssuer: issuer(f.federatedIssuer, trusted) }),
  federated_subject: (f) => ({ federatedSubject: subject(f.federatedSubject) }),
};

function checkTrust(t: ClientTrust): ClientTrust {
  if (t.jwks !== null && t.jwksUri !== null)
    throw invalid("jwks_uri", "and jwks cannot both be set: choose one");
  if ((t.federatedIssuer === null) !== (t.federatedSubject === null)) {
    throw invalid("federated_subject", "and federated_issuer go together: set both or neither");
  }
  return t;
}

/** Whether the client can authenticate with an assertion at all. */
export function hasTrustSource(t: ClientTrust): boolean {
  return t.jwks !== null || t.jwksUri !== null || t.federatedIssuer !== null;
}

/** A client created without a secret must have another way to authenticate. */
export function checkNoSecret(noSecret: boolean, t: ClientTrust): void {
  if (noSecret && !hasTrustSource(t)) {
    throw invalid(
      "no_secret",
      "needs a trust source: jwks, jwks_uri, or federated_issuer and federated_subject",
    );
  }
}

export function trustForCreate(req: TrustFields, trusted: readonly string[]): ClientTrust {
  const t = {} as ClientTrust;
  for (const set of Object.values(SETTERS)) Object.assign(t, set(req, trusted));
  return checkTrust(t);
}

/** The current trust with the trust fields named in update_mask replaced; other paths are not ours. */
export function trustForUpdate(
  current: ClientTrust,
  req: TrustFields & Pick<UpdateClientRequest, "updateMask">,
  trusted: readonly string[],
): ClientTrust {
  const next = { ...current };
  for (const path of req.updateMask?.paths ?? []) {
    const set = SETTERS[path];
    if (set) Object.assign(next, set(req, trusted));
  }
  return checkTrust(next);
}

export function trustOf(row: ClientTrust): ClientTrust {
  return {
    jwks: row.jwks,
    jwksUri: row.jwksUri,
    federatedIssuer: row.federatedIssuer,
    federatedSubject: row.federatedSubject,
  };
}

/** Every key of an inline JWKS must be one assertions can be verified with (not silently skipped). */
export async function checkClientKeys(t: ClientTrust): Promise<void> {
  if (t.jwks === null) return;
  const imported = await importJwks(JSON.parse(t.jwks));
  const bad = imported.skipped[0];
  if (bad !== undefined) throw invalid("jwks", `key ${bad.kid ?? "(no kid)"} is not usable: ${bad.reason}`);
}
