export { serveHttp } from "./serve.js";
export type { Listening } from "./serve.js";
export { applyCors, readJson, sendJson, sendError, PayloadTooLarge } from "./http-basics.js";
export type { Request, Response } from "./http-basics.js";
