import type { MemberRole, MessageRecord } from "../storage/index.js";

/** What a conversation actor can be asked to do; each success appends one event with the next seq. */
export type ActorCommand =
  | { type: "send"; senderId: string; body: string; idempotencyKey: string | null }
  | { type: "addMembers"; actorId: string; userIds: string[] }
  | { type: "removeMember"; actorId: string; userId: string }
  | { type: "rename"; actorId: string; title: string };

/** A committed event as callers and subscribers see it: body in plaintext. */
export type CommittedEvent = Omit<MessageRecord, "body" | "epoch"> & { body: string };

export type ActorResult = {
  /** The event appended, or the original one for a duplicate send; null for a no-op change. */
  event: CommittedEvent | null;
  duplicate: boolean;
};

/** chat.v1.MessageKind values stored in messages.kind. */
export const EventKind = {
  text: 1,
  membersAdded: 2,
  memberRemoved: 3,
  renamed: 4,
  created: 5,
} as const;

export type ConversationState = {
  epoch: bigint;
  lastSeq: bigint;
  kind: "direct" | "group";
  members: Map<string, MemberRole>;
};
