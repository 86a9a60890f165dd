import type { OutboxEntry } from "../storage/index.js";
import { EventKind, type CommittedEvent } from "./commands.js";

/** Kafka topics (documented in docs/kafka.md). */
export const topics = {
  messageCreated: "chat.message.created",
  messageRead: "chat.message.read",
  conversationUpdated: "chat.conversation.updated",
  presenceChanged: "presence.user.changed",
} as const;

/**
 * The outbox rows for committed conversation events: every event goes to chat.message.created;
 * membership and title changes also to chat.conversation.updated. Keyed by conversation id so a
 * partition sees a conversation in seq order; eventId `<conversationId>:<seq>` lets consumers dedupe.
 */
export function outboxForEvents(events: CommittedEvent[], includeBody: (e: CommittedEvent) => unknown): OutboxEntry[] {
  const entries: OutboxEntry[] = [];
  for (const e of events) {
    const eventId = `${e.conversationId}:${e.seq}`;
    const common = {
      version: 1,
      eventId,
      conversationId: e.conversationId,
      seq: e.seq.toString(),
      messageId: e.id,
      senderId: e.senderId,
      kind: kindName(e.kind),
      subjectUserIds: e.subjectUserIds,
      createdAtMs: e.createdAt,
    };
    entries.push({ topic: topics.messageCreated, key: e.conversationId, eventId, payload: { ...common, body: includeBody(e) } });
    if (e.kind !== EventKind.text) {
      entries.push({ topic: topics.conversationUpdated, key: e.conversationId, eventId, payload: common });
    }
  }
  return entries;
}

export function outboxForRead(conversationId: string, userId: string, lastReadSeq: bigint): OutboxEntry {
  const eventId = `${conversationId}:read:${userId}:${lastReadSeq}`;
  return {
    topic: topics.messageRead,
    key: conversationId,
    eventId,
    payload: { version: 1, eventId, conversationId, userId, lastReadSeq: lastReadSeq.toString(), atMs: Date.now() },
  };
}

export function kindName(kind: number): string {
  switch (kind) {
    case EventKind.text: return "text";
    case EventKind.membersAdded: return "members_added";
    case EventKind.memberRemoved: return "member_removed";
    case EventKind.renamed: return "conversation_renamed";
    case EventKind.created: return "conversation_created";
    default: return "unknown";
  }
}
