import { createRequire } from "node:module";
import { type Logger, type LoggerOptions, pino } from "pino";
import { SettingsError } from "../settings/settings.ts";

/**
 * Field names whose values are tokens or secrets, at the top level and one or two levels down.
 * pino replaces them before serialization, so a careless `log.info({ req })` still cannot leak one;
 * callers log `fingerprint(token)` instead.
 */
const SECRET_KEYS = [
  "token",
  "access_token",
  "accessToken",
  "refresh_token",
  "refreshToken",
  "id_token",
  "client_secret",
  "clientSecret",
  "secret",
  "password",
  "authorization",
  "Authorization",
  "cookie",
  "masterKey",
  "master_key",
  "privateKey",
  "private_key",
  "databaseUrl",
  "redisUrl",
  "redisPassword",
  "redisSentinelPassword",
];

/**
 * Request and response headers that carry a credential, as they arrive (lower case): the caller's
 * bearer token or client credentials, session cookies, and the verified token the sidecar forwards
 * in `x-gatehouse-jwt` (IDENTITY_HEADERS.token).
 */
export const SECRET_HEADERS = [
  "authorization",
  "proxy-authorization",
  "cookie",
  "set-cookie",
  "x-gatehouse-jwt",
];

const REDACT_PATHS = [
  ...SECRET_KEYS,
  ...SECRET_KEYS.map((k) => `*.${k}`),
  ...SECRET_KEYS.map((k) => `*.*.${k}`),
  ...SECRET_HEADERS.flatMap((h) => [`headers["${h}"]`, `*.headers["${h}"]`, `*.*.headers["${h}"]`]),
];

export interface LoggerSettings {
  level: string;
  /** Pretty-print for humans; default: when stdout is a terminal. */
  pretty?: boolean | undefined;
  /** Process role, stamped on every line (`token`, `sidecar`, `dev`, `cli`). */
  component: string;
  /** Where to write; default stdout. Tests pass a stream to capture lines. */
  destination?: NodeJS.WritableStream;
}

export function createLogger(settings: LoggerSettings): Logger {
  const options: LoggerOptions = {
    level: settings.level,
    base: { component: settings.component },
    redact: { paths: REDACT_PATHS, censor: "[redacted]" },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
  };
  const pretty =
    settings.pretty ??
    (settings.destination === undefined && process.stdout.isTTY === true && prettyInstalled());
  if (pretty) {
    // pino-pretty is a development dependency: production images log JSON lines only.
    if (!prettyInstalled()) {
      throw new SettingsError(
        "GATEHOUSE_LOG_PRETTY",
        "pretty logs need pino-pretty, a development dependency that is not installed here; unset it (logs are JSON lines)",
      );
    }
    return pino({
      ...options,
      transport: {
        target: "pino-pretty",
        options: { colorize: true, translateTime: "HH:MM:ss.l", ignore: "pid,hostname" },
      },
    });
  }
  return settings.destination ? pino(options, settings.destination as pino.DestinationStream) : pino(options);
}

function prettyInstalled(): boolean {
  try {
    createRequire(import.meta.url).resolve("pino-pretty");
    return true;
  } catch {
    return false;
  }
}

export type { Logger };
