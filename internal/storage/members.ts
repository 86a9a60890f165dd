import { sql } from "slonik";
import { z } from "zod";
import type { Database } from "./database.js";

/** Whether the user is a member of the conversation now (false for a missing conversation). */
export async function isMember(db: Database, conversationId: string, userId: string): Promise<boolean> {
  const found = await db.maybeOneFirst(sql.type(z.object({ found: z.boolean() }))`
    SELECT true AS found FROM members WHERE conversation_id = ${conversationId} AND user_id = ${userId}`);
  return found === true;
}

/**
 * The conversation's last seq when the user is a member of it, else null (a missing conversation
 * and a non-member look the same). One index probe; used by join/subscribe.
 */
export async function findMemberLastSeq(db: Database, conversationId: string, userId: string): Promise<bigint | null> {
  return db.maybeOneFirst(sql.type(z.object({ last_seq: z.bigint() }))`
    SELECT c.last_seq FROM conversations c
    JOIN members m ON m.conversation_id = c.id AND m.user_id = ${userId}
    WHERE c.id = ${conversationId}`);
}

/** last_seq of each existing conversation among the ids (missing ones are absent from the map). */
export async function listLastSeqs(db: Database, conversationIds: string[]): Promise<Map<string, bigint>> {
  if (conversationIds.length === 0) return new Map();
  const rows = await db.any(sql.type(z.object({ id: z.string(), last_seq: z.bigint() }))`
    SELECT id, last_seq FROM conversations WHERE id = ANY(${sql.array(conversationIds, "uuid")})`);
  return new Map(rows.map((r) => [r.id, r.last_seq]));
}
