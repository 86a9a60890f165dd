export { createTestEnv, eventually } from "./env.js";
export type { TestEnv } from "./env.js";
export { apiClients, registerUser } from "./clients.js";
export type { ApiClients } from "./clients.js";
