/**
 * `gatehouse/verify`: access-token verification in process, with the sidecar's checks, JWKS cache
 * and revocation-stream follower. See the README, section "SDK".
 */
export type { GatehouseErrorCode } from "../shared/errors/codes.ts";
export { GatehouseError } from "../shared/errors/gatehouse-error.ts";
export type { Identity, Requirement } from "../sidecar/verifier/identity.ts";
export {
  createGatehouseVerifier,
  type GatehouseVerifier,
  type GatehouseVerifierOptions,
  type RedisRevocationOptions,
  type VerifierLogger,
} from "./gatehouse-verifier.ts";
