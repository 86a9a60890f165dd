export { hashPassword, verifyPassword, burnPasswordCheck } from "./password.js";
export { createTokenService, bearerToken } from "./tokens.js";
export type { TokenService, Principal } from "./tokens.js";
