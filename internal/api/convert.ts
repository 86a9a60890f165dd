import { create } from "@bufbuild/protobuf";
import {
  ConversationKind,
  ConversationSchema,
  MemberRole,
  MemberSchema,
  UserSchema,
  type Conversation,
  type User,
} from "../gen/chat/v1/common_pb.js";
import { eventToProto, type CommittedEvent } from "../actor/index.js";
import type { ConversationRecord, MemberRecord, UserRecord } from "../storage/index.js";

/** Storage records and actor events to their chat.v1 wire messages. */

export const toUserProto = (u: UserRecord): User =>
  create(UserSchema, { id: u.id, username: u.username, displayName: u.displayName, createdAtMs: BigInt(u.createdAt) });

const roles: Record<MemberRecord["role"], MemberRole> = {
  owner: MemberRole.OWNER,
  admin: MemberRole.ADMIN,
  member: MemberRole.MEMBER,
};

export function toConversationProto(c: ConversationRecord, lastMessage: CommittedEvent | null): Conversation {
  return create(ConversationSchema, {
    id: c.id,
    kind: c.kind === "direct" ? ConversationKind.DIRECT : ConversationKind.GROUP,
    title: c.title,
    members: c.members.map((m) =>
      create(MemberSchema, {
        userId: m.userId,
        username: m.username,
        displayName: m.displayName,
        role: roles[m.role],
        lastReadSeq: m.lastReadSeq,
      }),
    ),
    lastSeq: c.lastSeq,
    createdAtMs: BigInt(c.createdAt),
    lastActivityAtMs: BigInt(c.lastActivityAt),
    unreadCount: c.unreadCount,
    lastMessage: lastMessage ? eventToProto(lastMessage) : undefined,
  });
}
