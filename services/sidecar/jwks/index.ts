export type { ImportedKeySet, SkippedKey, VerificationKey } from "./jwk-import.ts";
export { importJwks } from "./jwk-import.ts";
export type { JwksCache, JwksCacheOptions, JwksLogger, JwksStatus } from "./jwks-cache.ts";
export { createJwksCache } from "./jwks-cache.ts";
export type { HttpJwksSourceOptions, JwksFetchResult, JwksSource } from "./jwks-source.ts";
export { httpJwksSource, parseMaxAge } from "./jwks-source.ts";
export type { VerifyAlgorithm } from "./key-algorithm.ts";
export { algorithmOfKey, isVerifyAlgorithm, MIN_RSA_BITS, VERIFY_ALGORITHMS } from "./key-algorithm.ts";
