export { CONCURRENCY_RETRY_MS, createOverloadGuard } from "./overload-guard.ts";

export { createOverloadMetrics } from "./overload-metrics.ts";

export { limitOrOff, rateLimitSetting } from "./rate-limit-setting.ts";

export { fullBucket, takeToken } from "./token-bucket.ts";
