import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { ConversationKind } from "../gen/chat/v1/common_pb.js";
import {
  AddMembersResponseSchema,
  CreateConversationResponseSchema,
  GetConversationResponseSchema,
  ListConversationsResponseSchema,
  RemoveMemberResponseSchema,
  UpdateConversationResponseSchema,
  type AddMembersRequest,
  type AddMembersResponse,
  type CreateConversationRequest,
  type CreateConversationResponse,
  type GetConversationRequest,
  type GetConversationResponse,
  type ListConversationsRequest,
  type ListConversationsResponse,
  type RemoveMemberRequest,
  type RemoveMemberResponse,
  type UpdateConversationRequest,
  type UpdateConversationResponse,
} from "../gen/chat/v1/conversation_pb.js";
import { EventKind, openRecord, outboxForEvents, type CommittedEvent } from "../actor/index.js";
import type { Principal } from "../auth/index.js";
import { AppError, conversationNotFound, invalidArgument } from "../errors/index.js";
import {
  findConversationForMember,
  findDirectConversationId,
  insertConversation,
  listConversationsForMember,
  listUsers,
  type ConversationRecord,
} from "../storage/index.js";
import type { ApiDeps } from "./api-deps.js";
import { toConversationProto } from "./convert.js";
import * as v from "./validate.js";

/** Members one call may name at most. */
const MAX_MEMBERS_PER_CALL = 1000;

export function createConversationApi(deps: ApiDeps) {
  const view = (c: ConversationRecord) =>
    toConversationProto(c, c.lastMessage ? openRecord(c.lastMessage, deps.codec) : null);

  async function getForMember(conversationId: string, userId: string) {
    const c = await findConversationForMember(deps.db, conversationId, userId);
    if (c === null) throw conversationNotFound();
    return c;
  }

  /** Resolves ids and usernames to existing user ids; INVALID_ARGUMENT naming any unknown one. */
  async function resolveUsers(ids: string[], names: string[]): Promise<string[]> {
    const wantedIds = v.uuids("member_ids", ids, MAX_MEMBERS_PER_CALL);
    const wantedNames = v.usernames("member_usernames", names, MAX_MEMBERS_PER_CALL);
    const users = await listUsers(deps.db, wantedIds, wantedNames);
    const knownIds = new Set(users.map((u) => u.id));
    const knownNames = new Set(users.map((u) => u.username));
    const unknown = [...wantedIds.filter((id) => !knownIds.has(id)), ...wantedNames.filter((n) => !knownNames.has(n))];
    if (unknown.length > 0) throw invalidArgument("members", `unknown users: ${unknown.slice(0, 10).join(", ")}`);
    return [...knownIds];
  }

  return {
    async create(p: Principal, req: CreateConversationRequest): Promise<CreateConversationResponse> {
      const others = (await resolveUsers(req.memberIds, req.memberUsernames)).filter((id) => id !== p.userId);
      const id = randomUUID();
      let kind: "direct" | "group";
      let title = "";
      let directKey: string | null = null;
      if (req.kind === ConversationKind.DIRECT) {
        if (others.length !== 1) throw invalidArgument("member_ids", "a direct conversation has exactly one other member");
        if (req.title !== "") throw invalidArgument("title", "direct conversations have no title");
        kind = "direct";
        directKey = [p.userId, others[0]!].sort().join(":");
        const existing = await findDirectConversationId(deps.db, directKey);
        if (existing !== null) {
          return create(CreateConversationResponseSchema, { conversation: view(await getForMember(existing, p.userId)), created: false });
        }
      } else if (req.kind === ConversationKind.GROUP) {
        kind = "group";
        title = v.text("title", req.title.trim(), { min: 1, max: 128 });
      } else {
        throw invalidArgument("kind", "kind must be DIRECT or GROUP");
      }
      const members = [
        { userId: p.userId, role: kind === "group" ? ("owner" as const) : ("member" as const) },
        ...others.map((userId) => ({ userId, role: "member" as const })),
      ];
      const event: CommittedEvent = {
        id: randomUUID(), conversationId: id, seq: 1n, senderId: p.userId, kind: EventKind.created,
        body: title, subjectUserIds: members.map((m) => m.userId), idempotencyKey: null, createdAt: Date.now(),
      };
      const inserted = await insertConversation(deps.db, {
        id, kind, title, directKey, createdBy: p.userId, members,
        createdEvent: { ...event, epoch: 0n, body: { kind: "plain", text: "" } },
        outbox: outboxForEvents([{ ...event, body: "" }], () => null),
      });
      // Lost a race to create the same direct pair: answer with the winner's conversation.
      const conversationId = inserted ? id : await findDirectConversationId(deps.db, directKey!);
      if (conversationId === null) throw new AppError("unavailable", "try again");
      return create(CreateConversationResponseSchema, {
        conversation: view(await getForMember(conversationId, p.userId)),
        created: inserted,
      });
    },

    async get(p: Principal, req: GetConversationRequest): Promise<GetConversationResponse> {
      const id = uuidOrNotFound(req.conversationId);
      return create(GetConversationResponseSchema, { conversation: view(await getForMember(id, p.userId)) });
    },

    async list(p: Principal, req: ListConversationsRequest): Promise<ListConversationsResponse> {
      const rows = await listConversationsForMember(deps.db, p.userId, {
        limit: v.limit("limit", req.limit, 50, 200),
        beforeActivityAtMs: Number(v.seq("before_activity_at_ms", req.beforeActivityAtMs)),
      });
      return create(ListConversationsResponseSchema, { conversations: rows.map(view) });
    },

    async update(p: Principal, req: UpdateConversationRequest): Promise<UpdateConversationResponse> {
      const id = uuidOrNotFound(req.conversationId);
      const title = v.text("title", req.title.trim(), { min: 1, max: 128 });
      await deps.actors.tell(id, { type: "rename", actorId: p.userId, title });
      return create(UpdateConversationResponseSchema, { conversation: view(await getForMember(id, p.userId)) });
    },

    async addMembers(p: Principal, req: AddMembersRequest): Promise<AddMembersResponse> {
      const id = uuidOrNotFound(req.conversationId);
      const userIds = await resolveUsers(req.userIds, req.usernames);
      if (userIds.length === 0) throw invalidArgument("user_ids", "name at least one user");
      await deps.actors.tell(id, { type: "addMembers", actorId: p.userId, userIds });
      return create(AddMembersResponseSchema, { conversation: view(await getForMember(id, p.userId)) });
    },

    /** Leaving (user_id = self) answers without a conversation: the caller can no longer see it. */
    async removeMember(p: Principal, req: RemoveMemberRequest): Promise<RemoveMemberResponse> {
      const id = uuidOrNotFound(req.conversationId);
      const userId = v.uuid("user_id", req.userId);
      await deps.actors.tell(id, { type: "removeMember", actorId: p.userId, userId });
      if (userId === p.userId) return create(RemoveMemberResponseSchema, {});
      return create(RemoveMemberResponseSchema, { conversation: view(await getForMember(id, p.userId)) });
    },
  };
}

/** A malformed conversation id cannot name a conversation the caller belongs to. */
export function uuidOrNotFound(value: string): string {
  try {
    return v.uuid("conversation_id", value);
  } catch {
    throw conversationNotFound();
  }
}
