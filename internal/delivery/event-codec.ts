import { create, fromBinary, toBinary, type MessageInitShape } from "@bufbuild/protobuf";
import { MessageKind } from "../gen/chat/v1/common_pb.js";
import { EventSchema, type Event } from "../gen/chat/v1/events_pb.js";
import { eventToProto, openRecord, type BodyCodec, type CommittedEvent } from "../actor/index.js";
import type { MessageRecord } from "../storage/index.js";

/**
 * One event as the delivery layer moves it: decoded once per hub, encoded once, shared by every
 * subscriber. `seq` is 0n for ephemeral events (typing, read receipts, presence), which have no
 * place in the conversation's order.
 */
export type HubEvent = {
  conversationId: string;
  seq: bigint;
  event: Event;
  /** `chat.v1.Event` in binary: the frame for protobuf WebSocket clients, the Redis payload. */
  bytes: Uint8Array;
  /** Lazily built JSON WebSocket frame (see internal/gateway), cached for every socket. */
  jsonFrame?: string;
};

export function messageEvent(e: CommittedEvent): HubEvent {
  const event = create(EventSchema, { payload: { case: "messageCreated", value: { message: eventToProto(e) } } });
  return { conversationId: e.conversationId, seq: e.seq, event, bytes: toBinary(EventSchema, event) };
}

/** A stored event (body opened with the codec: it may be sealed at rest). */
export const recordEvent = (record: MessageRecord, codec: BodyCodec): HubEvent => messageEvent(openRecord(record, codec));

export function ephemeralEvent(conversationId: string, payload: MessageInitShape<typeof EventSchema>["payload"]): HubEvent {
  const event = create(EventSchema, { payload });
  return { conversationId, seq: 0n, event, bytes: toBinary(EventSchema, event) };
}

export function decodeEvent(conversationId: string, seq: bigint, bytes: Uint8Array): HubEvent {
  return { conversationId, seq, event: fromBinary(EventSchema, bytes), bytes };
}

/** The user a MEMBER_REMOVED event removes, else null. */
export function removedUserIds(e: HubEvent): string[] {
  if (e.event.payload.case !== "messageCreated") return [];
  const m = e.event.payload.value.message;
  return m && m.kind === MessageKind.MEMBER_REMOVED ? m.subjectUserIds : [];
}
