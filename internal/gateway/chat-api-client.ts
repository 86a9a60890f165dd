import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { MessageService, type MarkReadResponse, type SendMessageResponse } from "../gen/chat/v1/message_pb.js";
import { AppError, errorMappings, type ErrorCode } from "../errors/index.js";

const byConnectCode: Partial<Record<Code, ErrorCode>> = {
  [Code.InvalidArgument]: "invalid_argument",
  [Code.Unauthenticated]: "unauthenticated",
  [Code.PermissionDenied]: "permission_denied",
  [Code.NotFound]: "not_found",
  [Code.AlreadyExists]: "already_exists",
  [Code.FailedPrecondition]: "failed_precondition",
  [Code.ResourceExhausted]: "resource_exhausted",
  [Code.Unavailable]: "unavailable",
  [Code.DeadlineExceeded]: "deadline_exceeded",
};

/** A chat-node's answer as an AppError (the node's own code from `x-chat-error` when present). */
export function fromConnectError(error: unknown): AppError {
  if (error instanceof AppError) return error;
  if (!(error instanceof ConnectError)) return AppError.from(error);
  const own = error.metadata.get("x-chat-error");
  let code: ErrorCode = own !== null && own in errorMappings ? (own as ErrorCode) : (byConnectCode[error.code] ?? "internal");
  if (code === "not_owner") code = "unavailable";
  return new AppError(code, code === "internal" ? "internal error" : error.rawMessage, { cause: error });
}

/**
 * The chat-node calls behind `send` and `read` frames, made with the user's own token. Nodes are
 * used round-robin; a call that is safe to repeat (read; send with an idempotency key) moves on
 * to the next node on UNAVAILABLE.
 */
export function createChatApiClient(urls: string[], timeoutMs = 10_000) {
  const clients: Client<typeof MessageService>[] = urls.map((baseUrl) =>
    createClient(MessageService, createConnectTransport({ baseUrl, httpVersion: "2", useBinaryFormat: true })));
  let next = 0;
  async function call<T>(token: string, retryable: boolean, fn: (c: Client<typeof MessageService>, o: { headers: Headers; timeoutMs: number }) => Promise<T>): Promise<T> {
    const attempts = retryable ? Math.max(2, clients.length) : 1;
    for (let attempt = 1; ; attempt++) {
      const client = clients[next++ % clients.length]!;
      try {
        return await fn(client, { headers: new Headers({ authorization: `Bearer ${token}` }), timeoutMs });
      } catch (error) {
        const appError = fromConnectError(error);
        if (appError.code !== "unavailable" || attempt >= attempts) throw appError;
      }
    }
  }
  return {
    send(token: string, req: { conversationId: string; body: string; idempotencyKey: string }): Promise<SendMessageResponse> {
      return call(token, req.idempotencyKey !== "", (c, o) => c.sendMessage(req, o));
    },
    markRead(token: string, req: { conversationId: string; seq: bigint }): Promise<MarkReadResponse> {
      return call(token, true, (c, o) => c.markRead(req, o));
    },
  };
}

export type ChatApiClient = ReturnType<typeof createChatApiClient>;
