import { sql, type DatabaseTransactionConnection } from "slonik";
import { z } from "zod";
import type { Database } from "../storage/index.js";

/** Namespace of the advisory locks that give one mirror at a time a shard of the outbox keys. */
const SHARD_LOCK_NS = 7_331_003;

export type OutboxRow = { id: bigint; topic: string; key: string; eventId: string; payload: string; createdAtMs: number };

const outboxRow = z.object({ id: z.bigint(), topic: z.string(), key: z.string(), event_id: z.string(), payload: z.string(), created_at: z.number() });

/**
 * Claims up to `limit` unsent rows of one key shard in a transaction, hands them to `relay`, and
 * marks them sent when it resolves (the commit). A shard is held by one mirror at a time
 * (pg_try_advisory_xact_lock; another mirror skips to its next shard), and rows are taken in id
 * order with FOR UPDATE SKIP LOCKED, so a key's rows are relayed in the order they were written
 * while several mirrors work on different shards. Returns the rows relayed (0 = shard busy or empty).
 * When `relay` throws, nothing is marked and the rows are claimed again later.
 */
export async function relayOutboxShard(
  db: Database,
  shard: { index: number; count: number; limit: number },
  relay: (rows: OutboxRow[]) => Promise<void>,
): Promise<number> {
  return db.transaction(async (tx: DatabaseTransactionConnection) => {
    const locked = await tx.oneFirst(sql.type(z.object({ locked: z.boolean() }))`
      SELECT pg_try_advisory_xact_lock(${SHARD_LOCK_NS}, ${shard.index}) AS locked`);
    if (!locked) return 0;
    const rows = await tx.any(sql.type(outboxRow)`
      SELECT id, topic, key, event_id, payload::text AS payload, created_at FROM outbox
      WHERE sent_at IS NULL AND abs(hashtext(key)::bigint) % ${shard.count} = ${shard.index}
      ORDER BY id LIMIT ${shard.limit}
      FOR UPDATE SKIP LOCKED`);
    if (rows.length === 0) return 0;
    await relay(rows.map((r) => ({ id: r.id, topic: r.topic, key: r.key, eventId: r.event_id, payload: r.payload, createdAtMs: r.created_at })));
    await tx.query(sql.unsafe`UPDATE outbox SET sent_at = now() WHERE id = ANY(${sql.array(rows.map((r) => r.id.toString()), "int8")})`);
    return rows.length;
  });
}

/** Unsent rows and the age of the oldest (0 when none): the mirror's lag. */
export async function measureOutboxLag(db: Database): Promise<{ unsent: number; oldestAgeSeconds: number }> {
  const row = await db.one(sql.type(z.object({ unsent: z.number(), oldest_age_s: z.number() }))`
    SELECT count(*)::int AS unsent,
      COALESCE(EXTRACT(EPOCH FROM now() - min(created_at)), 0)::float8 AS oldest_age_s
    FROM outbox WHERE sent_at IS NULL`);
  return { unsent: row.unsent, oldestAgeSeconds: row.oldest_age_s };
}

/** Deletes sent rows older than `olderThanHours`, at most `limit` per call; returns how many. */
export async function pruneSentOutbox(db: Database, olderThanHours: number, limit: number): Promise<number> {
  const rows = await db.anyFirst(sql.type(z.object({ id: z.bigint() }))`
    DELETE FROM outbox WHERE id IN (
      SELECT id FROM outbox WHERE sent_at IS NOT NULL AND sent_at < now() - make_interval(hours => ${olderThanHours})
      ORDER BY id LIMIT ${limit})
    RETURNING id`);
  return rows.length;
}
