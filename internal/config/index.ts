export { loadConfig, ConfigError, configVariables } from "./config.js";
export type { Config } from "./config.js";
