import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { AuthService } from "./gen/chat/v1/auth_pb.js";
import { ConversationService } from "./gen/chat/v1/conversation_pb.js";
import { MessageService } from "./gen/chat/v1/message_pb.js";

/** The signed-in user, kept in localStorage so a reload stays signed in until the token expires. */
export type Session = { token: string; userId: string; username: string; displayName: string; expiresAtMs: number };

const SESSION_KEY = "chat.session";

export function loadSession(): Session | null {
  try {
    const raw = localStorage.getItem(SESSION_KEY);
    if (!raw) return null;
    const session = JSON.parse(raw) as Session;
    return session.expiresAtMs > Date.now() + 5_000 ? session : null;
  } catch {
    return null;
  }
}

export function saveSession(session: Session | null): void {
  if (session) localStorage.setItem(SESSION_KEY, JSON.stringify(session));
  else localStorage.removeItem(SESSION_KEY);
}

let currentToken: string | null = null;
/** Called when the API answers UNAUTHENTICATED: the token expired or was revoked. */
let onUnauthenticated: () => void = () => {};

export function setAuth(token: string | null, unauthenticated: () => void = () => {}): void {
  currentToken = token;
  onUnauthenticated = unauthenticated;
}

const auth: Interceptor = (next) => async (req) => {
  if (currentToken) req.header.set("authorization", `Bearer ${currentToken}`);
  try {
    return await next(req);
  } catch (error) {
    if (currentToken && ConnectError.from(error).code === Code.Unauthenticated) onUnauthenticated();
    throw error;
  }
};

// Same origin: the dev server (vite) and cmd/web both proxy /chat.v1.* to the chat-node.
const transport = createConnectTransport({ baseUrl: location.origin, interceptors: [auth], defaultTimeoutMs: 15_000 });

export const authClient = createClient(AuthService, transport);
export const conversationClient = createClient(ConversationService, transport);
export const messageClient = createClient(MessageService, transport);

/** A message fit to show a person. */
export function describeError(error: unknown): string {
  const e = ConnectError.from(error);
  switch (e.code) {
    case Code.Unavailable:
    case Code.DeadlineExceeded:
    case Code.Canceled:
      return "Can't reach the server. Check your connection and try again.";
    case Code.Unknown:
      return e.rawMessage && !/fetch|network/i.test(e.rawMessage) ? e.rawMessage : "Can't reach the server. Check your connection and try again.";
    default:
      return e.rawMessage || "Something went wrong.";
  }
}

export function isNotFound(error: unknown): boolean {
  const code = ConnectError.from(error).code;
  return code === Code.NotFound || code === Code.PermissionDenied;
}
