export { GCRA_LUA, gcraStep } from "./gcra.js";
export type { Budget, Decision } from "./gcra.js";
export { createLocalRateLimiter, createRedisRateLimiter } from "./rate-limiter.js";
export type { RateLimiter, RedisDownPolicy, RedisRateLimiterOptions } from "./rate-limiter.js";
export { createRateLimits, rateLimitHeaders, budgetsFrom, clientAddress, clientAddressKey } from "./rate-limits.js";
export type { RateLimits, RateLimitSettings, SetHeader } from "./rate-limits.js";
