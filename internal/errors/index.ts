export { AppError, errorMappings, invalidArgument, conversationNotFound } from "./app-error.js";
export type { ErrorCode, ErrorDetails } from "./app-error.js";
