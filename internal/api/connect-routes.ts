import { Code, ConnectError, type ConnectRouter, type HandlerContext, type Interceptor } from "@connectrpc/connect";
import { AuthService } from "../gen/chat/v1/auth_pb.js";
import { ConversationService } from "../gen/chat/v1/conversation_pb.js";
import { MessageService } from "../gen/chat/v1/message_pb.js";
import { InboxService } from "../gen/chat/v1/inbox_pb.js";
import { EventService, type SubscribeRequest, type SubscribeResponse } from "../gen/chat/v1/event_service_pb.js";
import { bearerToken, type Principal, type TokenService } from "../auth/index.js";
import { AppError, errorMappings } from "../errors/index.js";
import type { Logger, Metrics } from "../telemetry/index.js";
import { clientAddressKey, type RateLimits } from "../ratelimit/index.js";
import type { Api } from "./create-api.js";

/** chat.v1.EventService/Subscribe, implemented by internal/delivery (the gateway's replay/live code). */
export type EventSubscriber = {
  subscribe(p: Principal, req: SubscribeRequest, signal: AbortSignal): AsyncIterable<SubscribeResponse>;
};

/** Registers every public service on a Connect router (serving Connect, gRPC and gRPC-Web). */
export function connectRoutes(api: Api, tokens: TokenService, events?: EventSubscriber, limits?: RateLimits) {
  const who = (ctx: HandlerContext): Promise<Principal> => tokens.verify(bearerToken(ctx.requestHeader.get("authorization")));
  // Rate limits (internal/ratelimit) run before any work is done or queued; headers go on the answer.
  const header = (ctx: HandlerContext) => (name: string, value: string) => ctx.responseHeader.set(name, value);
  return (router: ConnectRouter) => {
    router.service(AuthService, {
      register: async (req, ctx) => {
        await limits?.auth(ctx.values.get(clientAddressKey), header(ctx));
        return api.auth.register(req);
      },
      login: async (req, ctx) => {
        await limits?.auth(ctx.values.get(clientAddressKey), header(ctx));
        await limits?.login(req.username.slice(0, 64), header(ctx));
        return api.auth.login(req);
      },
    });
    router.service(ConversationService, {
      createConversation: async (req, ctx) => api.conversations.create(await who(ctx), req),
      getConversation: async (req, ctx) => api.conversations.get(await who(ctx), req),
      listConversations: async (req, ctx) => api.conversations.list(await who(ctx), req),
      updateConversation: async (req, ctx) => api.conversations.update(await who(ctx), req),
      addMembers: async (req, ctx) => api.conversations.addMembers(await who(ctx), req),
      removeMember: async (req, ctx) => api.conversations.removeMember(await who(ctx), req),
    });
    router.service(MessageService, {
      sendMessage: async (req, ctx) => {
        const p = await who(ctx);
        await limits?.send(p.userId, header(ctx));
        return api.messages.send(p, req);
      },
      listMessages: async (req, ctx) => api.messages.list(await who(ctx), req),
      markRead: async (req, ctx) => api.messages.markRead(await who(ctx), req),
    });
    router.service(InboxService, {
      listInbox: async (req, ctx) => api.inbox.list(await who(ctx), req),
    });
    if (events) {
      router.service(EventService, {
        // Streamed errors bypass errorInterceptor's try/catch: map AppErrors here.
        subscribe: async function* (req, ctx) {
          try {
            yield* events.subscribe(await who(ctx), req, ctx.signal);
          } catch (error) {
            if (!(error instanceof AppError)) throw error;
            throw new ConnectError(error.message, errorMappings[error.code].connect);
          }
        },
      });
    }
  };
}

/** AppError to ConnectError (safe message, mapped code, retry hints); anything else is INTERNAL. */
export function toConnectError(error: unknown, logger: Logger): ConnectError {
  if (error instanceof ConnectError) return error;
  const appError = AppError.from(error);
  if (appError.code === "internal") logger.error({ err: error }, "internal error");
  const metadata = new Headers();
  if (appError.details.retryAfterMs !== undefined) {
    metadata.set("retry-after", String(Math.ceil(appError.details.retryAfterMs / 1000)));
  }
  if (appError.details.ownerNodeId !== undefined) metadata.set("x-chat-owner", appError.details.ownerNodeId);
  metadata.set("x-chat-error", appError.code);
  return new ConnectError(appError.message, errorMappings[appError.code].connect, metadata);
}

/** Translates errors and records call durations for every Connect/gRPC/gRPC-Web call. */
export function errorInterceptor(logger: Logger, metrics: Pick<Metrics, "rpcDuration">): Interceptor {
  return (next) => async (req) => {
    const started = performance.now();
    const procedure = `${req.service.typeName}/${req.method.name}`;
    try {
      const res = await next(req);
      metrics.rpcDuration.observe({ procedure, code: "ok" }, (performance.now() - started) / 1000);
      return res;
    } catch (error) {
      const connectError = toConnectError(error, logger);
      metrics.rpcDuration.observe({ procedure, code: Code[connectError.code] ?? "unknown" }, (performance.now() - started) / 1000);
      throw connectError;
    }
  };
}
