import { sql, type DatabaseTransactionConnection } from "slonik";
import { z } from "zod";
import { AppError } from "../errors/index.js";
import type { Database } from "./database.js";
import { messageRow, toMessage, type MessageRecord, type MemberRole, type OutboxEntry, type StoredBody } from "./records.js";

/** A conversation event about to be committed with its assigned seq. */
export type NewEvent = {
  id: string;
  conversationId: string;
  seq: bigint;
  senderId: string;
  kind: number;
  body: StoredBody;
  subjectUserIds: string[];
  idempotencyKey: string | null;
  epoch: bigint;
  /** Epoch ms; the actor's clock, so callers learn it without a read back. */
  createdAt: number;
};

const MESSAGE = sql.fragment`conversation_id, seq, id, sender_id, kind, body, ciphertext, iv, tag, key_version,
  subject_user_ids, idempotency_key, epoch, created_at`;

/** Inserts events and outbox rows (each as one multi-row statement) inside the caller's transaction. */
export async function insertEvents(
  tx: DatabaseTransactionConnection,
  events: NewEvent[],
  outbox: OutboxEntry[],
): Promise<void> {
  if (events.length > 0) {
    const values = events.map((e) => {
      const sealed = e.body.kind === "sealed" ? e.body : null;
      return sql.fragment`(${e.conversationId}, ${e.seq.toString()}, ${e.id}, ${e.senderId}, ${e.kind},
        ${e.body.kind === "plain" ? e.body.text : null},
        ${sealed ? sql.binary(sealed.ciphertext) : null}, ${sealed ? sql.binary(sealed.iv) : null},
        ${sealed ? sql.binary(sealed.tag) : null}, ${sealed ? sealed.keyVersion : null},
        ${sql.array(e.subjectUserIds, "uuid")}, ${e.idempotencyKey}, ${e.epoch.toString()},
        to_timestamp(${e.createdAt / 1000}))`;
    });
    await tx.query(sql.unsafe`
      INSERT INTO messages (conversation_id, seq, id, sender_id, kind, body, ciphertext, iv, tag, key_version,
        subject_user_ids, idempotency_key, epoch, created_at)
      VALUES ${sql.join(values, sql.fragment`, `)}`);
  }
  if (outbox.length > 0) {
    await tx.query(sql.unsafe`
      INSERT INTO outbox (topic, key, event_id, payload)
      SELECT t.topic, t.key, t.event_id, t.payload::jsonb FROM ${sql.unnest(
        outbox.map((o) => [o.topic, o.key, o.eventId, JSON.stringify(o.payload)]),
        ["text", "text", "text", "text"],
      )} AS t(topic, key, event_id, payload)`);
  }
}

export type MembershipChange =
  | { op: "add"; userIds: string[]; role: MemberRole }
  | { op: "remove"; userId: string }
  | { op: "rename"; title: string };

export type Commit = {
  conversationId: string;
  epoch: bigint;
  /** last_seq the actor believes is stored; the commit fails if it is not. */
  fromSeq: bigint;
  events: NewEvent[];
  changes: MembershipChange[];
  outbox: OutboxEntry[];
};

/**
 * Commits one actor batch atomically, conditional on the actor's epoch (fencing, DESIGN §2.3).
 * Throws AppError("not_owner") when another activation has bumped the epoch since.
 */
export async function commitBatch(db: Database, commit: Commit): Promise<void> {
  const toSeq = commit.fromSeq + BigInt(commit.events.length);
  await db.transaction(async (tx) => {
    const updated = await tx.maybeOneFirst(sql.type(z.object({ last_seq: z.bigint() }))`
      UPDATE conversations SET last_seq = ${toSeq.toString()}, last_activity_at = now()
      WHERE id = ${commit.conversationId} AND epoch = ${commit.epoch.toString()}
        AND last_seq = ${commit.fromSeq.toString()}
      RETURNING last_seq`);
    if (updated === null) throw new AppError("not_owner", "conversation epoch moved on");
    for (const change of commit.changes) {
      if (change.op === "add") {
        await tx.query(sql.unsafe`
          INSERT INTO members (conversation_id, user_id, role)
          SELECT ${commit.conversationId}, unnest(${sql.array(change.userIds, "uuid")}), ${change.role}
          ON CONFLICT DO NOTHING`);
      } else if (change.op === "remove") {
        await tx.query(sql.unsafe`
          DELETE FROM members WHERE conversation_id = ${commit.conversationId} AND user_id = ${change.userId}`);
      } else {
        await tx.query(sql.unsafe`UPDATE conversations SET title = ${change.title} WHERE id = ${commit.conversationId}`);
      }
    }
    await insertEvents(tx, commit.events, commit.outbox);
  });
}

export type Activation = {
  epoch: bigint;
  lastSeq: bigint;
  kind: "direct" | "group";
  members: Map<string, MemberRole>;
};

/** Takes ownership of a conversation: bumps its epoch and reads the state the actor caches. */
export async function activateConversation(db: Database, conversationId: string): Promise<Activation | null> {
  return db.transaction(async (tx) => {
    const row = await tx.maybeOne(sql.type(
      z.object({ epoch: z.bigint(), last_seq: z.bigint(), kind: z.enum(["direct", "group"]) }),
    )`UPDATE conversations SET epoch = epoch + 1 WHERE id = ${conversationId} RETURNING epoch, last_seq, kind`);
    if (row === null) return null;
    const members = await tx.any(sql.type(z.object({ user_id: z.string(), role: z.enum(["owner", "admin", "member"]) }))`
      SELECT user_id, role FROM members WHERE conversation_id = ${conversationId}`);
    return {
      epoch: row.epoch,
      lastSeq: row.last_seq,
      kind: row.kind,
      members: new Map(members.map((m) => [m.user_id, m.role])),
    };
  });
}

/** Messages already stored under these (sender, idempotency key) pairs. */
export async function listMessagesByIdempotencyKey(
  db: Database,
  conversationId: string,
  keys: { senderId: string; key: string }[],
): Promise<MessageRecord[]> {
  if (keys.length === 0) return [];
  const rows = await db.any(sql.type(messageRow)`
    SELECT ${MESSAGE} FROM messages
    WHERE conversation_id = ${conversationId}
      AND (sender_id, idempotency_key) IN (
        SELECT * FROM ${sql.unnest(keys.map((k) => [k.senderId, k.key]), ["uuid", "text"])})`);
  return rows.map(toMessage);
}

/** A page of events in ascending seq order, and whether more exist in the direction asked. */
export async function listMessages(
  db: Database,
  conversationId: string,
  page: { beforeSeq: bigint; afterSeq: bigint; limit: number },
): Promise<{ messages: MessageRecord[]; hasMore: boolean }> {
  const take = page.limit + 1;
  let rows: readonly z.infer<typeof messageRow>[];
  if (page.afterSeq > 0n) {
    rows = await db.any(sql.type(messageRow)`
      SELECT ${MESSAGE} FROM messages WHERE conversation_id = ${conversationId} AND seq > ${page.afterSeq.toString()}
      ORDER BY seq ASC LIMIT ${take}`);
  } else {
    const before = page.beforeSeq > 0n ? sql.fragment`AND seq < ${page.beforeSeq.toString()}` : sql.fragment``;
    rows = [...(await db.any(sql.type(messageRow)`
      SELECT ${MESSAGE} FROM messages WHERE conversation_id = ${conversationId} ${before}
      ORDER BY seq DESC LIMIT ${take}`))].reverse();
  }
  const hasMore = rows.length > page.limit;
  const kept = hasMore ? (page.afterSeq > 0n ? rows.slice(0, page.limit) : rows.slice(1)) : rows;
  return { messages: kept.map(toMessage), hasMore };
}
