export { createRedis } from "./client.js";
export type { Redis } from "./client.js";
export { redisKeys } from "./keys.js";
export type { RedisKeys } from "./keys.js";
