import { sql } from "slonik";
import { z } from "zod";
import type { Database } from "../../internal/storage/index.js";

export type AckedSend = { conversationId: string; senderId: string; idempotencyKey: string; messageId: string; seq: bigint };

/**
 * The checker run after every fault test (DESIGN §8). Reads PostgreSQL and returns a list of
 * violations (empty = all invariants hold):
 * - every conversation's seqs are exactly 1..last_seq (no gap, no duplicate);
 * - every acknowledged send is stored exactly once, with the id and seq the caller was told;
 * - no commit under a stale epoch: along seq order epochs never decrease and never exceed the
 *   conversation's current epoch.
 */
export async function checkInvariants(db: Database, acked: AckedSend[]): Promise<string[]> {
  const problems: string[] = [];
  const conversations = await db.any(sql.type(z.object({ id: z.string(), last_seq: z.bigint(), epoch: z.bigint() }))`
    SELECT id, last_seq, epoch FROM conversations`);
  const rows = await db.any(sql.type(z.object({
    conversation_id: z.string(), seq: z.bigint(), id: z.string(), sender_id: z.string(), idempotency_key: z.string().nullable(), epoch: z.bigint(),
  }))`SELECT conversation_id, seq, id, sender_id, idempotency_key, epoch FROM messages ORDER BY conversation_id, seq`);
  const byConversation = new Map<string, typeof rows[number][]>();
  for (const row of rows) {
    const list = byConversation.get(row.conversation_id) ?? [];
    list.push(row);
    byConversation.set(row.conversation_id, list);
  }
  for (const c of conversations) {
    const list = byConversation.get(c.id) ?? [];
    if (BigInt(list.length) !== c.last_seq) problems.push(`${c.id}: ${list.length} rows but last_seq ${c.last_seq}`);
    let lastEpoch = -1n;
    list.forEach((row, i) => {
      if (row.seq !== BigInt(i + 1)) problems.push(`${c.id}: expected seq ${i + 1}, found ${row.seq}`);
      if (row.epoch < lastEpoch) problems.push(`${c.id}: seq ${row.seq} committed under epoch ${row.epoch} after epoch ${lastEpoch}`);
      if (row.epoch > c.epoch) problems.push(`${c.id}: seq ${row.seq} has epoch ${row.epoch} beyond the conversation's ${c.epoch}`);
      lastEpoch = row.epoch;
    });
  }
  const byKey = new Map(rows.filter((r) => r.idempotency_key).map((r) => [`${r.conversation_id}|${r.sender_id}|${r.idempotency_key}`, r]));
  for (const a of acked) {
    const row = byKey.get(`${a.conversationId}|${a.senderId}|${a.idempotencyKey}`);
    if (!row) problems.push(`acknowledged send ${a.idempotencyKey} missing`);
    else if (row.id !== a.messageId || row.seq !== a.seq) {
      problems.push(`acknowledged send ${a.idempotencyKey}: told ${a.messageId}@${a.seq}, stored ${row.id}@${row.seq}`);
    }
  }
  return problems;
}
