import { sql, type DatabaseTransactionConnection } from "slonik";
import { z } from "zod";
import type { Database } from "./database.js";
import {
  memberRow,
  messageRow,
  toMember,
  toMessage,
  type ConversationKind,
  type ConversationRecord,
  type MemberRecord,
  type MemberRole,
  type MessageRecord,
  type OutboxEntry,
} from "./records.js";
import { insertEvents, type NewEvent } from "./events.js";

type Queryable = Database | DatabaseTransactionConnection;

const conversationRow = z.object({
  id: z.string(),
  kind: z.enum(["direct", "group"]),
  title: z.string(),
  last_seq: z.bigint(),
  created_at: z.number(),
  last_activity_at: z.number(),
  unread_count: z.bigint(),
});

async function listMembers(db: Queryable, conversationIds: string[]): Promise<Map<string, MemberRecord[]>> {
  const rows = await db.any(sql.type(memberRow)`
    SELECT m.conversation_id, m.user_id, u.username, u.display_name, m.role, m.last_read_seq
    FROM members m JOIN users u ON u.id = m.user_id
    WHERE m.conversation_id = ANY(${sql.array(conversationIds, "uuid")})
    ORDER BY m.joined_at, u.username`);
  const byConversation = new Map<string, MemberRecord[]>();
  for (const row of rows) {
    const list = byConversation.get(row.conversation_id) ?? [];
    list.push(toMember(row));
    byConversation.set(row.conversation_id, list);
  }
  return byConversation;
}

/** Conversation rows as one member sees them, with unread count and the newest text message. */
const memberView = (userId: string) => sql.fragment`
  SELECT c.id, c.kind, c.title, c.last_seq, c.created_at, c.last_activity_at,
    (SELECT count(*) FROM messages x
      WHERE x.conversation_id = c.id AND x.seq > me.last_read_seq AND x.kind = 1
        AND x.sender_id <> ${userId}) AS unread_count
  FROM conversations c JOIN members me ON me.conversation_id = c.id AND me.user_id = ${userId}`;

/** The newest text message of each conversation (one index probe each). */
async function listLastMessages(db: Queryable, conversationIds: string[]): Promise<Map<string, MessageRecord>> {
  const rows = await db.any(sql.type(messageRow)`
    SELECT m.* FROM unnest(${sql.array(conversationIds, "uuid")}) AS cid
    CROSS JOIN LATERAL (
      SELECT conversation_id, seq, id, sender_id, kind, body, ciphertext, iv, tag, key_version,
        subject_user_ids, idempotency_key, epoch, created_at
      FROM messages WHERE conversation_id = cid AND kind = 1 ORDER BY seq DESC LIMIT 1) m`);
  return new Map(rows.map((r) => [r.conversation_id, toMessage(r)]));
}

async function withMembers(db: Queryable, rows: readonly z.infer<typeof conversationRow>[]): Promise<ConversationRecord[]> {
  if (rows.length === 0) return [];
  const ids = rows.map((r) => r.id);
  const members = await listMembers(db, ids);
  const lastMessages = await listLastMessages(db, ids);
  return rows.map((r) => ({
    id: r.id,
    kind: r.kind,
    title: r.title,
    lastSeq: r.last_seq,
    createdAt: r.created_at,
    lastActivityAt: r.last_activity_at,
    unreadCount: r.unread_count,
    lastMessage: lastMessages.get(r.id) ?? null,
    members: members.get(r.id) ?? [],
  }));
}

/** The conversation if `userId` is a member; null for a non-member and for a missing one alike. */
export async function findConversationForMember(
  db: Queryable,
  conversationId: string,
  userId: string,
): Promise<ConversationRecord | null> {
  const rows = await db.any(
    sql.type(conversationRow)`${memberView(userId)} WHERE c.id = ${conversationId}`,
  );
  const [conversation] = await withMembers(db, rows);
  return conversation ?? null;
}

/** The member's conversations, newest activity first. */
export async function listConversationsForMember(
  db: Database,
  userId: string,
  options: { limit: number; beforeActivityAtMs: number },
): Promise<ConversationRecord[]> {
  const before = options.beforeActivityAtMs > 0
    ? sql.fragment`WHERE c.last_activity_at < to_timestamp(${options.beforeActivityAtMs / 1000})`
    : sql.fragment``;
  const rows = await db.any(sql.type(conversationRow)`
    ${memberView(userId)} ${before}
    ORDER BY c.last_activity_at DESC, c.id LIMIT ${options.limit}`);
  return withMembers(db, rows);
}

export async function findDirectConversationId(db: Queryable, directKey: string): Promise<string | null> {
  return db.maybeOneFirst(sql.type(z.object({ id: z.string() }))`
    SELECT id FROM conversations WHERE direct_key = ${directKey}`);
}

export type NewConversation = {
  id: string;
  kind: ConversationKind;
  title: string;
  directKey: string | null;
  createdBy: string;
  members: { userId: string; role: MemberRole }[];
  /** The CONVERSATION_CREATED event, seq 1, committed at epoch 0 before any actor runs. */
  createdEvent: NewEvent;
  outbox: OutboxEntry[];
};

/**
 * Creates a conversation, its members and its first event in one transaction. Returns false when
 * a direct conversation for the pair already exists (the caller then reads that one).
 */
export async function insertConversation(db: Database, c: NewConversation): Promise<boolean> {
  return db.transaction(async (tx) => {
    const inserted = await tx.maybeOneFirst(sql.type(z.object({ id: z.string() }))`
      INSERT INTO conversations (id, kind, title, direct_key, created_by, last_seq, epoch)
      VALUES (${c.id}, ${c.kind}, ${c.title}, ${c.directKey}, ${c.createdBy}, 1, 0)
      ON CONFLICT (direct_key) DO NOTHING RETURNING id`);
    if (inserted === null) return false;
    await tx.query(sql.unsafe`
      INSERT INTO members (conversation_id, user_id, role)
      SELECT ${c.id}, * FROM ${sql.unnest(c.members.map((m) => [m.userId, m.role]), ["uuid", "text"])}`);
    await insertEvents(tx, [c.createdEvent], c.outbox);
    return true;
  });
}

/** Moves the read marker forward only (never past last_seq). Returns the marker and whether it moved. */
export async function advanceReadMarker(
  db: Database,
  conversationId: string,
  userId: string,
  seq: bigint,
  outbox: (lastReadSeq: bigint) => OutboxEntry[],
): Promise<{ lastReadSeq: bigint; moved: boolean } | null> {
  return db.transaction(async (tx) => {
    const moved = await tx.maybeOneFirst(sql.type(z.object({ last_read_seq: z.bigint() }))`
      UPDATE members m SET last_read_seq = LEAST(${seq.toString()}::bigint, c.last_seq)
      FROM conversations c
      WHERE c.id = m.conversation_id AND m.conversation_id = ${conversationId} AND m.user_id = ${userId}
        AND m.last_read_seq < LEAST(${seq.toString()}::bigint, c.last_seq)
      RETURNING m.last_read_seq`);
    if (moved !== null) {
      await insertEvents(tx, [], outbox(moved));
      return { lastReadSeq: moved, moved: true };
    }
    const current = await tx.maybeOneFirst(sql.type(z.object({ last_read_seq: z.bigint() }))`
      SELECT last_read_seq FROM members WHERE conversation_id = ${conversationId} AND user_id = ${userId}`);
    return current === null ? null : { lastReadSeq: current, moved: false };
  });
}
