import type { DescService } from "@bufbuild/protobuf";
import { createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { AuthService } from "../../internal/gen/chat/v1/auth_pb.js";
import { ConversationService } from "../../internal/gen/chat/v1/conversation_pb.js";
import { MessageService } from "../../internal/gen/chat/v1/message_pb.js";

export type ApiClients = {
  auth: Client<typeof AuthService>;
  conversations: Client<typeof ConversationService>;
  messages: Client<typeof MessageService>;
};

/**
 * Typed clients for a chat-node. `protocol` "connect" uses Connect JSON over HTTP/1.1 (no lingering
 * HTTP/2 sessions), "grpc" uses gRPC over h2c. `token` is sent as a bearer token.
 */
export function apiClients(baseUrl: string, token?: string, protocol: "connect" | "grpc" = "connect"): ApiClients {
  const interceptors = token ? [bearer(token)] : [];
  const transport = protocol === "connect"
    ? createConnectTransport({ baseUrl, httpVersion: "1.1", useBinaryFormat: false, interceptors })
    : createGrpcTransport({ baseUrl, interceptors });
  return {
    auth: createClient(AuthService, transport),
    conversations: createClient(ConversationService, transport),
    messages: createClient(MessageService, transport),
  };
}

/**
 * A typed client for any one service of a chat process (chat-node, presence, ...): Connect with
 * connect-node's default binary format over HTTP/1.1, `token` sent as a bearer token.
 */
export function serviceClient<T extends DescService>(service: T, baseUrl: string, token: string): Client<T> {
  return createClient(service, createConnectTransport({ baseUrl, httpVersion: "1.1", interceptors: [bearer(token)] }));
}

function bearer(token: string): Interceptor {
  return (next) => async (req) => {
    req.header.set("authorization", `Bearer ${token}`);
    return next(req);
  };
}

/** A user made by registerUser. */
export type TestUser = Awaited<ReturnType<typeof registerUser>>;

let counter = 0;
/** Registers a fresh user and returns its id, name, token and clients. */
export async function registerUser(baseUrl: string, name = "user") {
  const username = `${name}${Date.now().toString(36)}${(counter++).toString(36)}`.slice(0, 32).toLowerCase();
  const res = await apiClients(baseUrl).auth.register({ username, password: "correct horse battery" });
  return { id: res.user!.id, username, token: res.token, api: apiClients(baseUrl, res.token) };
}
