export { databaseSettings, loggingSettings, redisSettings } from "./common-settings.ts";
export * as types from "./setting-types.ts";
export type { SettingsOf } from "./settings.ts";
export { loadSettings, renderSettingsTable, SettingsError, setting } from "./settings.ts";
