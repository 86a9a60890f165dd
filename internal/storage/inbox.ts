import { sql, type DatabaseTransactionConnection } from "slonik";
import { z } from "zod";
import type { Database } from "./database.js";
import { insertEvents } from "./events.js";
import { messageRow, toMessage, type MessageRecord, type OutboxEntry } from "./records.js";

/** Namespace of the advisory locks that serialize inbox writers per conversation. */
const INBOX_LOCK_NS = 7_331_002;

/** `@username` not preceded or followed by a username character (usernames: [a-z0-9_.-]). */
const MENTION_HEAD = "(^|[^a-z0-9_.-])@";
const MENTION_TAIL = "($|[^a-z0-9_.-])";

const textByOthers = (from: ReturnType<typeof sql.fragment>) => sql.fragment`
  SELECT count(*) FROM messages x
  WHERE x.conversation_id = m.conversation_id AND x.seq > ${from} AND x.seq <= c.last_seq
    AND x.kind = 1 AND x.sender_id <> m.user_id`;

const mentioning = sql.fragment`AND x.body ~* (${MENTION_HEAD}::text || replace(u.username, '.', ${"\\."}::text) || ${MENTION_TAIL}::text)`;

/**
 * Inbox rows as they are now, one per membership matching `where`: the stored row's counts plus
 * the messages after its counted_seq when its read_seq is still the member's marker, else counted
 * from the marker. Exact at the statement's snapshot whatever state the stored row is in.
 */
const computedInbox = (where: ReturnType<typeof sql.fragment>) => sql.fragment`
  SELECT m.user_id, m.conversation_id, c.kind, c.title, c.last_seq, m.last_read_seq, c.last_activity_at,
    CASE WHEN i.user_id IS NOT NULL AND i.read_seq = m.last_read_seq AND i.counted_seq <= c.last_seq
      THEN i.unread_count + (${textByOthers(sql.fragment`i.counted_seq`)})
      ELSE (${textByOthers(sql.fragment`m.last_read_seq`)}) END AS unread_count,
    CASE WHEN i.user_id IS NOT NULL AND i.read_seq = m.last_read_seq AND i.counted_seq <= c.last_seq
      THEN i.mention_count + (${textByOthers(sql.fragment`i.counted_seq`)} ${mentioning})
      ELSE (${textByOthers(sql.fragment`m.last_read_seq`)} ${mentioning}) END AS mention_count,
    lm.id AS last_message_id, lm.seq AS last_message_seq
  FROM members m
  JOIN conversations c ON c.id = m.conversation_id
  JOIN users u ON u.id = m.user_id
  LEFT JOIN inbox i ON i.user_id = m.user_id AND i.conversation_id = m.conversation_id
  LEFT JOIN LATERAL (
    SELECT x.id, x.seq FROM messages x
    WHERE x.conversation_id = m.conversation_id AND x.kind = 1 AND x.seq <= c.last_seq
    ORDER BY x.seq DESC LIMIT 1) lm ON true
  WHERE ${where}`;

const refreshedRow = z.object({
  user_id: z.string(),
  unread_count: z.bigint(),
  mention_count: z.bigint(),
  counted_seq: z.bigint(),
  read_seq: z.bigint(),
});

export type InboxCounts = { userId: string; unreadCount: bigint; mentionCount: bigint; countedSeq: bigint; readSeq: bigint };

/**
 * Brings every member's inbox row of the conversation up to date (insert or update), serialized
 * per conversation with an advisory lock so a row is always extended from its latest version.
 * Idempotent: running it twice, late or out of order yields the same rows (they derive from seqs).
 */
export async function refreshInboxForConversation(db: Database, conversationId: string): Promise<InboxCounts[]> {
  return db.transaction(async (tx: DatabaseTransactionConnection) => {
    await tx.query(sql.unsafe`SELECT pg_advisory_xact_lock(${INBOX_LOCK_NS}, hashtext(${conversationId}))`);
    const rows = await tx.any(sql.type(refreshedRow)`
      INSERT INTO inbox AS t (user_id, conversation_id, counted_seq, read_seq, unread_count, mention_count,
        last_message_id, last_message_seq, last_activity_at, updated_at)
      SELECT v.user_id, v.conversation_id, v.last_seq, v.last_read_seq, v.unread_count, v.mention_count,
        v.last_message_id, v.last_message_seq, v.last_activity_at, now()
      FROM (${computedInbox(sql.fragment`m.conversation_id = ${conversationId}`)}) v
      ON CONFLICT (user_id, conversation_id) DO UPDATE SET
        counted_seq = EXCLUDED.counted_seq, read_seq = EXCLUDED.read_seq,
        unread_count = EXCLUDED.unread_count, mention_count = EXCLUDED.mention_count,
        last_message_id = EXCLUDED.last_message_id, last_message_seq = EXCLUDED.last_message_seq,
        last_activity_at = EXCLUDED.last_activity_at, updated_at = now()
      WHERE t.counted_seq <= EXCLUDED.counted_seq
      RETURNING t.user_id, t.unread_count, t.mention_count, t.counted_seq, t.read_seq`);
    return rows.map((r) => ({
      userId: r.user_id, unreadCount: r.unread_count, mentionCount: r.mention_count, countedSeq: r.counted_seq, readSeq: r.read_seq,
    }));
  });
}

/** Conversations with a member whose inbox row is missing or behind (the worker's repair sweep). */
export async function listStaleInboxConversations(db: Database, limit: number): Promise<string[]> {
  const rows = await db.anyFirst(sql.type(z.object({ conversation_id: z.string() }))`
    SELECT DISTINCT m.conversation_id FROM members m
    JOIN conversations c ON c.id = m.conversation_id
    LEFT JOIN inbox i ON i.user_id = m.user_id AND i.conversation_id = m.conversation_id
    WHERE i.user_id IS NULL OR i.counted_seq <> c.last_seq OR i.read_seq <> m.last_read_seq
    LIMIT ${limit}`);
  return [...rows];
}

const inboxEntryRow = z.object({
  conversation_id: z.string(),
  kind: z.enum(["direct", "group"]),
  title: z.string(),
  last_seq: z.bigint(),
  last_read_seq: z.bigint(),
  last_activity_at: z.number(),
  unread_count: z.bigint(),
  mention_count: z.bigint(),
  last_message_seq: z.bigint().nullable(),
  total_unread: z.bigint(),
});

export type InboxEntryRecord = {
  conversationId: string;
  kind: "direct" | "group";
  title: string;
  lastSeq: bigint;
  lastReadSeq: bigint;
  lastActivityAt: number;
  unreadCount: bigint;
  mentionCount: bigint;
  lastMessage: MessageRecord | null;
};

/**
 * The user's inbox, newest activity first, with counts exact at this moment (see computedInbox),
 * and the sum of unread over all their conversations.
 */
export async function listInboxForUser(
  db: Database,
  userId: string,
  page: { limit: number; beforeActivityAtMs: number },
): Promise<{ entries: InboxEntryRecord[]; totalUnread: bigint }> {
  const before = page.beforeActivityAtMs > 0
    ? sql.fragment`WHERE v.last_activity_at < to_timestamp(${page.beforeActivityAtMs / 1000})`
    : sql.fragment``;
  const rows = await db.any(sql.type(inboxEntryRow)`
    SELECT * FROM (
      SELECT v.conversation_id, v.kind, v.title, v.last_seq, v.last_read_seq, v.last_activity_at,
        v.unread_count, v.mention_count, v.last_message_seq,
        sum(v.unread_count) OVER ()::bigint AS total_unread
      FROM (${computedInbox(sql.fragment`m.user_id = ${userId}`)}) v) v
    ${before}
    ORDER BY v.last_activity_at DESC, v.conversation_id LIMIT ${page.limit}`);
  const previews = rows.filter((r) => r.last_message_seq !== null);
  const messages = new Map<string, MessageRecord>();
  if (previews.length > 0) {
    const found = await db.any(sql.type(messageRow)`
      SELECT conversation_id, seq, id, sender_id, kind, body, ciphertext, iv, tag, key_version,
        subject_user_ids, idempotency_key, epoch, created_at
      FROM messages WHERE (conversation_id, seq) IN (
        SELECT * FROM ${sql.unnest(previews.map((r) => [r.conversation_id, r.last_message_seq!.toString()]), ["uuid", "int8"])})`);
    for (const m of found) messages.set(m.conversation_id, toMessage(m));
  }
  return {
    totalUnread: rows[0]?.total_unread ?? 0n,
    entries: rows.map((r) => ({
      conversationId: r.conversation_id,
      kind: r.kind,
      title: r.title,
      lastSeq: r.last_seq,
      lastReadSeq: r.last_read_seq,
      lastActivityAt: r.last_activity_at,
      unreadCount: r.unread_count,
      mentionCount: r.mention_count,
      lastMessage: messages.get(r.conversation_id) ?? null,
    })),
  };
}

/** One stored event's envelope (no body), or null. */
export async function findEventHeader(
  db: Database,
  conversationId: string,
  seq: bigint,
): Promise<{ id: string; senderId: string; kind: number } | null> {
  const row = await db.maybeOne(sql.type(z.object({ id: z.string(), sender_id: z.string(), kind: z.number() }))`
    SELECT id, sender_id, kind FROM messages WHERE conversation_id = ${conversationId} AND seq = ${seq.toString()}`);
  return row ? { id: row.id, senderId: row.sender_id, kind: row.kind } : null;
}

// --- also used by presence ---

/** Users sharing at least one conversation with userId (not userId itself), at most `limit`. */
export async function listCoMemberIds(db: Database, userId: string, limit: number): Promise<string[]> {
  const rows = await db.anyFirst(sql.type(z.object({ user_id: z.string() }))`
    SELECT DISTINCT other.user_id FROM members me
    JOIN members other ON other.conversation_id = me.conversation_id AND other.user_id <> me.user_id
    WHERE me.user_id = ${userId} LIMIT ${limit}`);
  return [...rows];
}

/** Outbox rows that belong to no conversation event (e.g. presence changes), in one transaction. */
export async function insertOutboxRows(db: Database, rows: OutboxEntry[]): Promise<void> {
  if (rows.length === 0) return;
  await db.transaction((tx) => insertEvents(tx, [], rows));
}
