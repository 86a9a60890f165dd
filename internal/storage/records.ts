import { z } from "zod";

/** Rows as the rest of the application sees them. Seqs and epochs are bigint; times epoch ms. */

export const memberRoles = ["owner", "admin", "member"] as const;
export type MemberRole = (typeof memberRoles)[number];
export type ConversationKind = "direct" | "group";

export const userRow = z.object({
  id: z.string(),
  username: z.string(),
  display_name: z.string(),
  password_hash: z.string(),
  created_at: z.number(),
});
export type UserRecord = {
  id: string;
  username: string;
  displayName: string;
  passwordHash: string;
  createdAt: number;
};
export const toUser = (r: z.infer<typeof userRow>): UserRecord => ({
  id: r.id,
  username: r.username,
  displayName: r.display_name,
  passwordHash: r.password_hash,
  createdAt: r.created_at,
});

export const memberRow = z.object({
  conversation_id: z.string(),
  user_id: z.string(),
  username: z.string(),
  display_name: z.string(),
  role: z.enum(memberRoles),
  last_read_seq: z.bigint(),
});
export type MemberRecord = {
  userId: string;
  username: string;
  displayName: string;
  role: MemberRole;
  lastReadSeq: bigint;
};
export const toMember = (r: z.infer<typeof memberRow>): MemberRecord => ({
  userId: r.user_id,
  username: r.username,
  displayName: r.display_name,
  role: r.role,
  lastReadSeq: r.last_read_seq,
});

export const messageRow = z.object({
  conversation_id: z.string(),
  seq: z.bigint(),
  id: z.string(),
  sender_id: z.string(),
  kind: z.number(),
  body: z.string().nullable(),
  ciphertext: z.instanceof(Buffer).nullable(),
  iv: z.instanceof(Buffer).nullable(),
  tag: z.instanceof(Buffer).nullable(),
  key_version: z.number().nullable(),
  subject_user_ids: z.array(z.string()),
  idempotency_key: z.string().nullable(),
  epoch: z.bigint(),
  created_at: z.number(),
});

/** A body as stored: plaintext, or AES-256-GCM parts. */
export type StoredBody =
  | { kind: "plain"; text: string }
  | { kind: "sealed"; ciphertext: Buffer; iv: Buffer; tag: Buffer; keyVersion: number };

export type MessageRecord = {
  id: string;
  conversationId: string;
  seq: bigint;
  senderId: string;
  kind: number;
  body: StoredBody;
  subjectUserIds: string[];
  idempotencyKey: string | null;
  epoch: bigint;
  createdAt: number;
};
export const toMessage = (r: z.infer<typeof messageRow>): MessageRecord => ({
  id: r.id,
  conversationId: r.conversation_id,
  seq: r.seq,
  senderId: r.sender_id,
  kind: r.kind,
  body:
    r.ciphertext && r.iv && r.tag && r.key_version !== null
      ? { kind: "sealed", ciphertext: r.ciphertext, iv: r.iv, tag: r.tag, keyVersion: r.key_version }
      : { kind: "plain", text: r.body ?? "" },
  subjectUserIds: r.subject_user_ids,
  idempotencyKey: r.idempotency_key,
  epoch: r.epoch,
  createdAt: r.created_at,
});

export const MESSAGE_COLUMNS = [
  "conversation_id",
  "seq",
  "id",
  "sender_id",
  "kind",
  "body",
  "ciphertext",
  "iv",
  "tag",
  "key_version",
  "subject_user_ids",
  "idempotency_key",
  "epoch",
  "created_at",
] as const;

export type ConversationRecord = {
  id: string;
  kind: ConversationKind;
  title: string;
  lastSeq: bigint;
  createdAt: number;
  lastActivityAt: number;
  members: MemberRecord[];
  /** For the member who asked: text messages by others after their read marker. */
  unreadCount: bigint;
  lastMessage: MessageRecord | null;
};

/** One Kafka outbox row, written in the same transaction as the event it describes. */
export type OutboxEntry = { topic: string; key: string; eventId: string; payload: unknown };
