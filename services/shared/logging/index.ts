export { fingerprint } from "./fingerprint.ts";
export type { Logger, LoggerSettings } from "./logger.ts";
export { createLogger, REDACT_PATHS, SECRET_HEADERS } from "./logger.ts";
