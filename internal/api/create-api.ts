import type { ApiDeps } from "./api-deps.js";
import { createAuthApi } from "./auth-api.js";
import { createConversationApi } from "./conversation-api.js";
import { createMessageApi } from "./message-api.js";
import { createInboxApi } from "../inbox/index.js";

/** The transport-independent API: Connect, gRPC, REST and WebSocket all call these. */
export function createApi(deps: ApiDeps) {
  return {
    auth: createAuthApi(deps),
    conversations: createConversationApi(deps),
    messages: createMessageApi(deps),
    inbox: createInboxApi(deps),
  };
}

export type Api = ReturnType<typeof createApi>;
