export { createApi } from "./create-api.js";
export type { Api } from "./create-api.js";
export type { ApiDeps, ActorRouter, Notifier } from "./api-deps.js";
export { connectRoutes, errorInterceptor, toConnectError } from "./connect-routes.js";
export { restRoutes } from "./rest-routes.js";
export { toConversationProto } from "./convert.js";
