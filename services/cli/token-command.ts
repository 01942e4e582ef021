import { readFileSync } from "node:fs";
import {
  createLocalJWKSet,
  decodeJwt,
  decodeProtectedHeader,
  errors,
  type JSONWebKeySet,
  type JWK,
  type JWTPayload,
  jwtVerify,
} from "jose";
import { fingerprint } from "../shared/logging/fingerprint.ts";
import { fields, type Output, outputFor, printJson } from "./cli-output.ts";
import { EXIT_FAILED, EXIT_OK, parseFlags, UsageError } from "./command.ts";
import { commandGroup, type Subcommand } from "./command-group.ts";
import { CONNECTION_FLAGS, CONNECTION_USAGE } from "./rpc-connection.ts";
import { checkRevocation, type RevocationCheck, revocationSourcesFromEnv } from "./token-revocation-check.ts";

interface Verdict {
  jwks: string;
  /** The JWKS entry named by the token's kid, public members only; null when there is none. */
  key: Pick<JWK, "kid" | "kty" | "alg" | "crv"> | null;
  verifies: boolean;
  problem?: string;
}

/** Reads the token from the argument, or stdin for "-" or no argument. */
function tokenFrom(positionals: string[]): string {
  if (positionals.length > 1) throw new UsageError(`unexpected argument "${positionals[1]}"`);
  const arg = positionals[0];
  const text = arg === undefined || arg === "-" ? readFileSync(0, "utf8") : arg;
  const token = text.trim().replace(/^Bearer\s+/i, "");
  if (token === "") throw new UsageError("missing TOKEN");
  return token;
}

/** Signature with a JWKS key, then exp/nbf (and iss/aud when given): what a sidecar would check first. */
async function verdictFor(
  token: string,
  kid: string | undefined,
  jwksUrl: string,
  expect: { issuer?: string | undefined; audience?: string | undefined },
): Promise<Verdict> {
  let set: JSONWebKeySet;
  try {
    const res = await fetch(jwksUrl, { signal: AbortSignal.timeout(5000) });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    set = (await res.json()) as JSONWebKeySet;
    if (!Array.isArray(set.keys)) throw new Error("no keys array");
  } catch (err) {
    throw new Error(`cannot read the JWKS at ${jwksUrl}: ${(err as Error).message}`);
  }
  const jwk = set.keys.find((k) => k.kid === kid);
  const key = jwk ? { kid: jwk.kid, kty: jwk.kty, alg: jwk.alg, crv: jwk.crv } : null;
  try {
    await jwtVerify(token, createLocalJWKSet(set), {
      algorithms: ["EdDSA", "ES256", "RS256"],
      ...(expect.issuer ? { issuer: expect.issuer } : {}),
      ...(expect.audience ? { audience: expect.audience } : {}),
    });
    return { jwks: jwksUrl, key, verifies: true };
  } catch (err) {
    return { jwks: jwksUrl, key, verifies: false, problem: problemOf(err, kid) };
  }
}

function problemOf(err: unknown, kid: string | undefined): string {
  if (err instanceof errors.JWKSNoMatchingKey) {
    return `no key ${kid ?? "(no kid)"} in the JWKS: retired, revoked, or another issuer's`;
  }
  if (err instanceof errors.JWSSignatureVerificationFailed) return "the signature does not match the key";
  if (err instanceof errors.JWTExpired) return "expired";
  if (err instanceof errors.JWTClaimValidationFailed) return `claim ${err.claim}: ${err.reason}`;
  if (err instanceof errors.JOSEAlgNotAllowed) return "algorithm not allowed (only EdDSA, ES256, RS256)";
  return (err as Error).message;
}

function relative(epochSeconds: number, now: number): string {
  const d = Math.round(epochSeconds - now / 1000);
  const abs = Math.abs(d);
  const text =
    abs >= 3600 ? `${Math.round(abs / 360) / 10}h` : abs >= 60 ? `${Math.round(abs / 6) / 10}m` : `${abs}s`;
  return d >= 0 ? `in ${text}` : `${text} ago`;
}

function show(value: unknown, key: string, now: number): string {
  if ((key === "exp" || key === "iat" || key === "nbf") && typeof value === "number") {
    return `${value} (${new Date(value * 1000).toISOString()}, ${relative(value, now)})`;
  }
  return typeof value === "string" ? value : JSON.stringify(value);
}

function printRevocation(output: Output, check: RevocationCheck): void {
  if (!check.checked) output.out(`revoked    not checked: ${check.why}`);
  else if (check.verdict === "live") output.out(`revoked    no (asked ${check.via})`);
  else if (check.verdict === "revoked") output.out(`revoked    yes: ${check.reason} (asked ${check.via})`);
  else output.out(`revoked    not active (asked ${check.via}): revoked, expired, or not signed by it`);
}

function print(
  output: Output,
  token: string,
  header: object,
  claims: JWTPayload,
  verdict: Verdict | undefined,
  revocation: RevocationCheck,
): void {
  const now = Date.now();
  // The name logs and audit rows give this token (they never hold the token itself).
  output.out(`fingerprint ${fingerprint(token)}`);
  output.out("header");
  output.out(indent(fields(Object.entries(header).map(([k, v]) => [k, show(v, k, now)]))));
  output.out("claims");
  output.out(indent(fields(Object.entries(claims).map(([k, v]) => [k, show(v, k, now)]))));
  if (!verdict) {
    output.out("\nnot verified: pass --jwks URL to check the signature against a key set");
    printRevocation(output, revocation);
    return;
  }
  output.out(
    `\nkey        ${verdict.key ? `${verdict.key.kid} (${verdict.key.alg ?? verdict.key.kty}) in ${verdict.jwks}` : `none in ${verdict.jwks}`}`,
  );
  output.out(`verifies   ${verdict.verifies ? "yes" : `no: ${verdict.problem}`}`);
  printRevocation(output, revocation);
}

const indent = (text: string) =>
  text
    .split("\n")
    .map((l) => `  ${l}`)
    .join("\n");

const inspect: Subcommand = {
  name: "inspect",
  summary:
    "Decode a JWT's header and claims; say whether it is revoked, and with --jwks which key signed it and whether it verifies",
  usage: `Usage: gatehouse token inspect [TOKEN | -] [--jwks URL] [--issuer ISS] [--audience AUD] [--json]

Decodes an access token's header and claims without trusting them (nothing is verified unless
--jwks is given), and prints its fingerprint, the name logs and audit rows give it. The token is read from stdin when TOKEN is "-" or missing. With --jwks, fetches
the key set, names the key the token says signed it, and checks the signature and exp/nbf (and
iss/aud when given).

Revocation: with client credentials (an introspector or admin client) it asks the token service
(Introspect); otherwise, with REDIS_URL or REDIS_SENTINELS, it reads the revocation stream
(GATEHOUSE_REVOCATION_STREAM, default gatehouse:revocations) as a sidecar would; otherwise, or when
neither answers, it says it did not check and why.

Exit 0 when nothing found the token bad, 1 when it would not verify, is revoked, or the token
service says it is not active.

  --jwks URL       key set to check against, e.g. http://127.0.0.1:7480/.well-known/jwks.json
  --issuer ISS     also require this iss
  --audience AUD   also require this aud
  --json           print {"fingerprint", "header", "claims", "verification", "revocation"} as JSON

${CONNECTION_USAGE}`,
  async run(argv) {
    const { values, positionals } = parseFlags(argv, {
      ...CONNECTION_FLAGS,
      json: { type: "boolean" },
      jwks: { type: "string" },
      issuer: { type: "string" },
      audience: { type: "string" },
    });
    if (values.jwks !== undefined && !URL.canParse(values.jwks)) throw new UsageError("--jwks must be a URL");
    const token = tokenFrom(positionals);
    let header: ReturnType<typeof decodeProtectedHeader>;
    let claims: JWTPayload;
    try {
      header = decodeProtectedHeader(token);
      claims = decodeJwt(token);
    } catch (err) {
      throw new Error(`not a JWT: ${(err as Error).message}`);
    }
    const verdict = values.jwks
      ? await verdictFor(token, header.kid, values.jwks, { issuer: values.issuer, audience: values.audience })
      : undefined;
    const revocation = await checkRevocation(token, claims, header.kid, revocationSourcesFromEnv(values));
    const output = outputFor(values.json);
    if (output.json) {
      printJson(output, {
        fingerprint: fingerprint(token),
        header,
        claims,
        ...(verdict ? { verification: verdict } : {}),
        revocation,
      });
    } else print(output, token, header, claims, verdict, revocation);
    const bad = (verdict && !verdict.verifies) || (revocation.checked && revocation.verdict !== "live");
    return bad ? EXIT_FAILED : EXIT_OK;
  },
};

export const tokenCommand = commandGroup("token", "Inspect tokens", [inspect]);
