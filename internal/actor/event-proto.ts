import { create } from "@bufbuild/protobuf";
import { MessageSchema, type Message } from "../gen/chat/v1/common_pb.js";
import type { CommittedEvent } from "./commands.js";

/** A committed event as the chat.v1.Message every transport carries. */
export function eventToProto(e: CommittedEvent): Message {
  return create(MessageSchema, {
    id: e.id,
    conversationId: e.conversationId,
    seq: e.seq,
    senderId: e.senderId,
    kind: e.kind,
    body: e.body,
    subjectUserIds: e.subjectUserIds,
    createdAtMs: BigInt(e.createdAt),
  });
}

/** The inverse of eventToProto (the idempotency key does not travel; it is null). */
export function eventFromProto(m: Message): CommittedEvent {
  return {
    id: m.id,
    conversationId: m.conversationId,
    seq: m.seq,
    senderId: m.senderId,
    kind: m.kind,
    body: m.body,
    subjectUserIds: m.subjectUserIds,
    createdAt: Number(m.createdAtMs),
    idempotencyKey: null,
  };
}
