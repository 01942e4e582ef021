export type { OverloadGuard, OverloadGuardOptions, Release } from "./overload-guard.ts";
export { CONCURRENCY_RETRY_MS, createOverloadGuard } from "./overload-guard.ts";
export type { OverloadMetrics } from "./overload-metrics.ts";
export { createOverloadMetrics } from "./overload-metrics.ts";
export type { RateLimit } from "./rate-limit-setting.ts";
export { limitOrOff, rateLimitSetting } from "./rate-limit-setting.ts";
export type { BucketLimit, BucketState } from "./token-bucket.ts";
export { fullBucket, takeToken } from "./token-bucket.ts";
