export type { JwksCache, JwksCacheOptions } from "./jwks-cache.ts";
export { createJwksCache } from "./jwks-cache.ts";
