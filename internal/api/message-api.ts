import { create } from "@bufbuild/protobuf";
import {
  ListMessagesResponseSchema,
  MarkReadResponseSchema,
  SendMessageResponseSchema,
  type ListMessagesRequest,
  type ListMessagesResponse,
  type MarkReadRequest,
  type MarkReadResponse,
  type SendMessageRequest,
  type SendMessageResponse,
} from "../gen/chat/v1/message_pb.js";
import { eventToProto, openRecord, outboxForRead } from "../actor/index.js";
import type { Principal } from "../auth/index.js";
import { AppError, conversationNotFound, invalidArgument } from "../errors/index.js";
import { advanceReadMarker, isMember, listMessages } from "../storage/index.js";
import type { ApiDeps } from "./api-deps.js";
import { uuidOrNotFound } from "./conversation-api.js";
import * as v from "./validate.js";

export function createMessageApi(deps: ApiDeps) {
  return {
    async send(p: Principal, req: SendMessageRequest): Promise<SendMessageResponse> {
      const conversationId = uuidOrNotFound(req.conversationId);
      const body = v.body("body", req.body, deps.maxMessageBytes);
      const idempotencyKey = v.idempotencyKey("idempotency_key", req.idempotencyKey);
      const result = await deps.actors.tell(conversationId, { type: "send", senderId: p.userId, body, idempotencyKey });
      if (result.event === null) throw new AppError("internal", "send produced no event");
      return create(SendMessageResponseSchema, { message: eventToProto(result.event), duplicate: result.duplicate });
    },

    async list(p: Principal, req: ListMessagesRequest): Promise<ListMessagesResponse> {
      const conversationId = uuidOrNotFound(req.conversationId);
      const beforeSeq = v.seq("before_seq", req.beforeSeq);
      const afterSeq = v.seq("after_seq", req.afterSeq);
      if (beforeSeq > 0n && afterSeq > 0n) throw invalidArgument("before_seq", "give before_seq or after_seq, not both");
      const limit = v.limit("limit", req.limit, 50, 200);
      if (!(await isMember(deps.db, conversationId, p.userId))) throw conversationNotFound();
      const page = await listMessages(deps.db, conversationId, { beforeSeq, afterSeq, limit });
      return create(ListMessagesResponseSchema, {
        messages: page.messages.map((m) => eventToProto(openRecord(m, deps.codec))),
        hasMore: page.hasMore,
      });
    },

    async markRead(p: Principal, req: MarkReadRequest): Promise<MarkReadResponse> {
      const conversationId = uuidOrNotFound(req.conversationId);
      const seq = v.seq("seq", req.seq);
      const result = await advanceReadMarker(deps.db, conversationId, p.userId, seq, (last) => [
        outboxForRead(conversationId, p.userId, last),
      ]);
      if (result === null) throw conversationNotFound();
      if (result.moved) {
        await deps.notifier.readReceipt(conversationId, p.userId, result.lastReadSeq).catch((err: unknown) =>
          deps.logger.warn({ err, conversationId }, "read receipt publish failed"),
        );
      }
      return create(MarkReadResponseSchema, { lastReadSeq: result.lastReadSeq });
    },
  };
}
