export { databaseSettings, loggingSettings, redisSettings } from "./common-settings.ts";
export * as types from "./setting-types.ts";
export type { LoadInput, Setting, SettingsOf, SettingsSpec } from "./settings.ts";
export { flagName, loadSettings, renderSettingsTable, SettingsError, setting } from "./settings.ts";
