import { create, fromJson, toJson, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { LoginRequestSchema, LoginResponseSchema, RegisterRequestSchema, RegisterResponseSchema } from "../gen/chat/v1/auth_pb.js";
import {
  AddMembersRequestSchema,
  AddMembersResponseSchema,
  CreateConversationRequestSchema,
  CreateConversationResponseSchema,
  GetConversationRequestSchema,
  GetConversationResponseSchema,
  ListConversationsRequestSchema,
  ListConversationsResponseSchema,
  RemoveMemberRequestSchema,
  RemoveMemberResponseSchema,
  UpdateConversationRequestSchema,
  UpdateConversationResponseSchema,
} from "../gen/chat/v1/conversation_pb.js";
import {
  ListMessagesRequestSchema,
  ListMessagesResponseSchema,
  MarkReadRequestSchema,
  MarkReadResponseSchema,
  SendMessageRequestSchema,
  SendMessageResponseSchema,
} from "../gen/chat/v1/message_pb.js";
import { ListInboxRequestSchema, ListInboxResponseSchema } from "../gen/chat/v1/inbox_pb.js";
import { bearerToken, type Principal, type TokenService } from "../auth/index.js";
import { AppError, invalidArgument } from "../errors/index.js";
import { readJson, sendJson, type Request, type Response } from "../http/index.js";
import type { Api } from "./create-api.js";
import { clientAddress, type RateLimits } from "../ratelimit/index.js";

type Ctx = { req: Request; params: string[]; query: URLSearchParams; body: () => Promise<unknown>; who: () => Promise<Principal>; setHeader: (name: string, value: string) => void };
type Json = Record<string, unknown>;
/** `status` picks the HTTP status from the answer (default 200). */
type Route = { method: string; pattern: RegExp; run: (ctx: Ctx) => Promise<Json>; status?: (answer: Json) => number };

/** Parses proto3 JSON into a request message; unknown fields and bad types are INVALID_ARGUMENT. */
function parse<D extends DescMessage>(schema: D, json: unknown): MessageShape<D> {
  if (json === null || typeof json !== "object" || Array.isArray(json)) throw new AppError("invalid_argument", "request body must be a JSON object");
  try {
    return fromJson(schema, json as never);
  } catch (error) {
    throw new AppError("invalid_argument", error instanceof Error ? error.message.slice(0, 200) : "invalid request", { cause: error });
  }
}

const reply = <D extends DescMessage>(schema: D, message: MessageShape<D>) => toJson(schema, message, { alwaysEmitImplicit: true }) as Json;

/** The seed's short kind names, accepted besides the proto enum names. */
function normalizeKind(json: unknown): unknown {
  if (json && typeof json === "object" && "kind" in json) {
    const kind = (json as { kind: unknown }).kind;
    if (kind === "direct") return { ...json, kind: "CONVERSATION_KIND_DIRECT" };
    if (kind === "group") return { ...json, kind: "CONVERSATION_KIND_GROUP" };
  }
  return json;
}

function queryInt(query: URLSearchParams, name: string): string | undefined {
  const value = query.get(name);
  if (value === null || value === "") return undefined;
  if (!/^\d{1,18}$/.test(value)) throw invalidArgument(name, `${name} must be a non-negative integer`);
  return value;
}

const UUID = "([0-9a-fA-F-]{36})";

/**
 * The seed's REST paths (documented in README), each mapped onto the same API as the RPCs: bodies
 * are the proto3 JSON of the matching request message, answers the proto3 JSON of the response.
 */
export function restRoutes(api: Api, tokens: TokenService, maxRequestBytes: number, limits?: RateLimits, trustedProxies: readonly string[] = []) {
  // Rate limits (internal/ratelimit) run before any work is done or queued; headers go on the answer.
  const authLimit = (c: Ctx) => limits?.auth(clientAddress(c.req, trustedProxies), c.setHeader);
  const routes: Route[] = [
    { method: "POST", pattern: /^\/api\/auth\/register$/, run: async (c) => { await authLimit(c); return reply(RegisterResponseSchema, await api.auth.register(parse(RegisterRequestSchema, await c.body()))); }, status: () => 201 },
    {
      method: "POST", pattern: /^\/api\/auth\/login$/,
      run: async (c) => {
        await authLimit(c);
        const request = parse(LoginRequestSchema, await c.body());
        await limits?.login(request.username.slice(0, 64), c.setHeader);
        return reply(LoginResponseSchema, await api.auth.login(request));
      },
    },
    {
      method: "GET", pattern: /^\/api\/conversations$/,
      run: async (c) => reply(ListConversationsResponseSchema, await api.conversations.list(await c.who(), create(ListConversationsRequestSchema, {
        limit: Number(queryInt(c.query, "limit") ?? 0),
        beforeActivityAtMs: BigInt(queryInt(c.query, "beforeActivityAtMs") ?? 0),
      }))),
    },
    { method: "POST", pattern: /^\/api\/conversations$/, run: async (c) => reply(CreateConversationResponseSchema, await api.conversations.create(await c.who(), parse(CreateConversationRequestSchema, normalizeKind(await c.body())))), status: (a) => (a.created ? 201 : 200) },
    { method: "GET", pattern: new RegExp(`^/api/conversations/${UUID}$`), run: async (c) => reply(GetConversationResponseSchema, await api.conversations.get(await c.who(), create(GetConversationRequestSchema, { conversationId: c.params[0] }))) },
    {
      method: "PATCH", pattern: new RegExp(`^/api/conversations/${UUID}$`),
      run: async (c) => reply(UpdateConversationResponseSchema, await api.conversations.update(await c.who(), parse(UpdateConversationRequestSchema, { ...(await c.body() as object), conversationId: c.params[0] }))),
    },
    {
      method: "POST", pattern: new RegExp(`^/api/conversations/${UUID}/members$`),
      run: async (c) => reply(AddMembersResponseSchema, await api.conversations.addMembers(await c.who(), parse(AddMembersRequestSchema, { ...(await c.body() as object), conversationId: c.params[0] }))),
    },
    {
      method: "DELETE", pattern: new RegExp(`^/api/conversations/${UUID}/members/${UUID}$`),
      run: async (c) => reply(RemoveMemberResponseSchema, await api.conversations.removeMember(await c.who(), create(RemoveMemberRequestSchema, { conversationId: c.params[0], userId: c.params[1] }))),
    },
    {
      method: "GET", pattern: /^\/api\/messages$/,
      run: async (c) => reply(ListMessagesResponseSchema, await api.messages.list(await c.who(), create(ListMessagesRequestSchema, {
        conversationId: c.query.get("conversationId") ?? "",
        beforeSeq: BigInt(queryInt(c.query, "beforeSeq") ?? 0),
        afterSeq: BigInt(queryInt(c.query, "afterSeq") ?? 0),
        limit: Number(queryInt(c.query, "limit") ?? 0),
      }))),
    },
    {
      method: "POST", pattern: /^\/api\/messages$/,
      run: async (c) => {
        const json = (await c.body()) as Record<string, unknown>;
        if (json === null || typeof json !== "object" || Array.isArray(json)) throw new AppError("invalid_argument", "request body must be a JSON object");
        const { content, ...rest } = json;
        const key = c.req.headers["idempotency-key"];
        const request = parse(SendMessageRequestSchema, { ...rest, ...(rest.body === undefined && content !== undefined ? { body: content } : {}) });
        if (typeof key === "string" && key !== "") request.idempotencyKey = key;
        const p = await c.who();
        await limits?.send(p.userId, c.setHeader);
        return reply(SendMessageResponseSchema, await api.messages.send(p, request));
      },
      status: (a) => (a.duplicate ? 200 : 201),
    },
    {
      method: "GET", pattern: /^\/api\/inbox$/,
      run: async (c) => reply(ListInboxResponseSchema, await api.inbox.list(await c.who(), create(ListInboxRequestSchema, {
        limit: Number(queryInt(c.query, "limit") ?? 0),
        beforeActivityAtMs: BigInt(queryInt(c.query, "beforeActivityAtMs") ?? 0),
      }))),
    },
    { method: "POST", pattern: /^\/api\/messages\/read$/, run: async (c) => reply(MarkReadResponseSchema, await api.messages.markRead(await c.who(), parse(MarkReadRequestSchema, await c.body()))) },
  ];

  /** Handles the request when a route matches and returns true; false lets the caller answer 404/405. */
  return async function handleRest(req: Request, res: Response): Promise<boolean> {
    const url = new URL(req.url ?? "/", "http://localhost");
    const matching = routes.filter((r) => r.pattern.test(url.pathname));
    if (matching.length === 0) return false;
    const route = matching.find((r) => r.method === req.method);
    if (!route) throw new AppError("invalid_argument", `method ${req.method} not allowed here`);
    const params = route.pattern.exec(url.pathname)!.slice(1).map((p) => p.toLowerCase());
    const authorization = req.headers.authorization;
    const result = await route.run({
      req,
      params,
      query: url.searchParams,
      body: () => readJson(req, maxRequestBytes),
      who: () => tokens.verify(bearerToken(typeof authorization === "string" ? authorization : undefined)),
      setHeader: (name, value) => res.setHeader(name, value),
    });
    sendJson(res, route.status?.(result) ?? 200, result);
    return true;
  };
}
