export { fingerprint } from "./fingerprint.ts";
export type { Logger } from "./logger.ts";
export { createLogger, SECRET_HEADERS } from "./logger.ts";
