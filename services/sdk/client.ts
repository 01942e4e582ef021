/** `gatehouse/client`: a typed client of the token service's Issue and Refresh. See the README, section "SDK". */
export type { GatehouseErrorCode } from "../shared/errors/codes.ts";
export { GatehouseError } from "../shared/errors/gatehouse-error.ts";
export type { RetryOptions } from "./call-retry.ts";
export {
  type ClientCredentials,
  createTokenClient,
  type IssueInput,
  type TokenClient,
  type TokenClientOptions,
  type TokenSet,
} from "./token-client.ts";
export type { TokenSession, TokenSessionOptions } from "./token-session.ts";
