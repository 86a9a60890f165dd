import { create } from "@bufbuild/protobuf";
import { openRecord, type BodyCodec } from "../actor/index.js";
import type { Principal } from "../auth/index.js";
import { invalidArgument } from "../errors/index.js";
import { ConversationKind, MessageSchema } from "../gen/chat/v1/common_pb.js";
import { InboxEntrySchema, ListInboxResponseSchema, type ListInboxRequest, type ListInboxResponse } from "../gen/chat/v1/inbox_pb.js";
import { listInboxForUser, type Database } from "../storage/index.js";

const DEFAULT_LIMIT = 50;
const MAX_LIMIT = 200;

/** ListInbox for the API layer (Connect/gRPC and `GET /api/inbox`). Counts are exact: derived from seqs. */
export function createInboxApi(deps: { db: Database; codec: BodyCodec }) {
  return {
    async list(me: Principal, req: ListInboxRequest): Promise<ListInboxResponse> {
      const limit = req.limit === 0 ? DEFAULT_LIMIT : req.limit;
      if (limit < 1 || limit > MAX_LIMIT) throw invalidArgument("limit", `limit must be 1-${MAX_LIMIT}`);
      if (req.beforeActivityAtMs < 0n) throw invalidArgument("beforeActivityAtMs", "beforeActivityAtMs must not be negative");
      const { entries, totalUnread } = await listInboxForUser(deps.db, me.userId, { limit, beforeActivityAtMs: Number(req.beforeActivityAtMs) });
      return create(ListInboxResponseSchema, {
        totalUnread,
        entries: entries.map((e) => {
          const last = e.lastMessage ? openRecord(e.lastMessage, deps.codec) : null;
          return create(InboxEntrySchema, {
            conversationId: e.conversationId,
            kind: e.kind === "direct" ? ConversationKind.DIRECT : ConversationKind.GROUP,
            title: e.title,
            lastSeq: e.lastSeq,
            lastReadSeq: e.lastReadSeq,
            unreadCount: e.unreadCount,
            mentionCount: e.mentionCount,
            lastActivityAtMs: BigInt(e.lastActivityAt),
            lastMessage: last
              ? create(MessageSchema, {
                  id: last.id, conversationId: last.conversationId, seq: last.seq, senderId: last.senderId, kind: last.kind,
                  body: last.body, subjectUserIds: last.subjectUserIds, createdAtMs: BigInt(last.createdAt),
                })
              : undefined,
          });
        }),
      });
    },
  };
}

export type InboxApi = ReturnType<typeof createInboxApi>;
