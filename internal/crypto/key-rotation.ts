import { Queue, WaitingError, Worker, UnrecoverableError, type Job } from "bullmq";
import { sql } from "slonik";
import { z } from "zod";
import { bodyAad } from "../actor/index.js";
import { createRedis, type Redis, type RedisKeys } from "../redis/index.js";
import type { Database, StoredBody } from "../storage/index.js";
import type { Logger } from "../telemetry/index.js";
import type { MessageCodec } from "./message-codec.js";

/**
 * Online key rotation: rows whose body is not sealed with the target key version (older versions,
 * and plaintext rows) are re-sealed in batches, walking messages in primary-key order
 * (conversation_id, seq) with keyset pagination. After every batch the position is written to a
 * Redis checkpoint, so a killed worker's job (BullMQ moves it back to waiting once its lock
 * expires) resumes where it stopped. Each batch is one UPDATE guarded by the row's old key version,
 * so re-running a batch is harmless and a row is never overwritten with a stale body. New writes
 * already use the active key, so passes converge; a row written behind the checkpoint by a node
 * still on the old key is caught by the next pass (at most MAX_PASSES).
 */

const MAX_PASSES = 3;
const FIRST_UUID = "00000000-0000-0000-0000-000000000000";

export type RotationCheckpoint = {
  targetVersion: number;
  state: "running" | "done";
  pass: number;
  afterConversationId: string;
  afterSeq: string;
  /** Rows re-sealed so far (all passes). */
  rewritten: number;
  /** Rows that could not be opened (missing key version, failed authentication); left as they are. */
  failed: number;
  startedAtMs: number;
  updatedAtMs: number;
  finishedAtMs: number;
};

export type KeyRotationDeps = {
  db: Database;
  redis: Redis;
  keys: RedisKeys;
  codec: MessageCodec;
  /** Rows per batch (CHAT_KEY_ROTATION_BATCH). */
  batchSize: number;
  /** Pause between batches (CHAT_KEY_ROTATION_PAUSE_MS); default 0. */
  pauseMs?: number;
  logger: Logger;
};

const rowSchema = z.object({
  conversation_id: z.string(),
  seq: z.bigint(),
  id: z.string(),
  body: z.string().nullable(),
  ciphertext: z.instanceof(Buffer).nullable(),
  iv: z.instanceof(Buffer).nullable(),
  tag: z.instanceof(Buffer).nullable(),
  key_version: z.number().nullable(),
});

function storedBody(r: z.infer<typeof rowSchema>): StoredBody {
  return r.ciphertext && r.iv && r.tag && r.key_version !== null
    ? { kind: "sealed", ciphertext: r.ciphertext, iv: r.iv, tag: r.tag, keyVersion: r.key_version }
    : { kind: "plain", text: r.body ?? "" };
}

export async function findRotationCheckpoint(redis: Redis, keys: RedisKeys): Promise<RotationCheckpoint | null> {
  const h = await redis.hgetall(keys.keyRotationCheckpoint);
  if (!h.targetVersion) return null;
  return {
    targetVersion: Number(h.targetVersion), state: h.state === "done" ? "done" : "running", pass: Number(h.pass ?? 1),
    afterConversationId: h.afterConversationId ?? FIRST_UUID, afterSeq: h.afterSeq ?? "0",
    rewritten: Number(h.rewritten ?? 0), failed: Number(h.failed ?? 0),
    startedAtMs: Number(h.startedAtMs ?? 0), updatedAtMs: Number(h.updatedAtMs ?? 0), finishedAtMs: Number(h.finishedAtMs ?? 0),
  };
}

async function saveCheckpoint(redis: Redis, keys: RedisKeys, c: RotationCheckpoint): Promise<void> {
  await redis.hset(keys.keyRotationCheckpoint, { ...c, updatedAtMs: Date.now() } as unknown as Record<string, string>);
}

/** Rows per key version: `plaintext` counts unsealed rows. */
export async function countRowsByKeyVersion(db: Database): Promise<Record<string, number>> {
  const rows = await db.any(sql.type(z.object({ key_version: z.number().nullable(), n: z.number() }))`
    SELECT key_version, count(*)::int AS n FROM messages GROUP BY key_version ORDER BY key_version NULLS FIRST`);
  return Object.fromEntries(rows.map((r) => [r.key_version === null ? "plaintext" : String(r.key_version), r.n]));
}

/**
 * Runs (or resumes) the rotation to the codec's active key version until every row is on it or
 * `shouldStop()` is true between batches. Returns the checkpoint; `state` is "done" when finished.
 */
export async function runKeyRotation(
  deps: KeyRotationDeps,
  options: { shouldStop?: () => boolean; onBatch?: (c: RotationCheckpoint) => Promise<void> | void } = {},
): Promise<RotationCheckpoint> {
  const { db, redis, keys, codec, logger } = deps;
  const target = codec.sealVersion;
  if (target === 0) throw new UnrecoverableError("key rotation needs encryption enabled (CHAT_ENCRYPTION_ENABLED=true)");
  const prior = await findRotationCheckpoint(redis, keys);
  const now = Date.now();
  const c: RotationCheckpoint = prior && prior.targetVersion === target && prior.state === "running"
    ? prior
    : { targetVersion: target, state: "running", pass: 1, afterConversationId: FIRST_UUID, afterSeq: "0", rewritten: 0, failed: 0, startedAtMs: now, updatedAtMs: now, finishedAtMs: 0 };
  if (c !== prior) await saveCheckpoint(redis, keys, c);
  logger.info({ targetVersion: target, pass: c.pass, afterConversationId: c.afterConversationId, afterSeq: c.afterSeq }, "key rotation running");
  let failedThisPass = 0;
  while (!options.shouldStop?.()) {
    const rows = await db.any(sql.type(rowSchema)`
      SELECT conversation_id, seq, id, body, ciphertext, iv, tag, key_version FROM messages
      WHERE (conversation_id, seq) > (${c.afterConversationId}::uuid, ${c.afterSeq}::int8)
        AND COALESCE(key_version, 0) <> ${target}
      ORDER BY conversation_id, seq
      LIMIT ${deps.batchSize}`);
    if (rows.length === 0) {
      const remaining = await db.oneFirst(sql.type(z.object({ n: z.number() }))`
        SELECT count(*)::int AS n FROM messages WHERE COALESCE(key_version, 0) <> ${target}`);
      if (remaining > failedThisPass && c.pass < MAX_PASSES) {
        Object.assign(c, { pass: c.pass + 1, afterConversationId: FIRST_UUID, afterSeq: "0" });
        failedThisPass = 0;
        await saveCheckpoint(redis, keys, c);
        continue;
      }
      Object.assign(c, { state: "done", finishedAtMs: Date.now() });
      await saveCheckpoint(redis, keys, c);
      logger.info({ targetVersion: target, rewritten: c.rewritten, failed: c.failed, remaining }, "key rotation finished");
      return c;
    }
    const update = { cids: [] as string[], seqs: [] as string[], cts: [] as string[], ivs: [] as string[], tags: [] as string[], old: [] as number[] };
    for (const r of rows) {
      try {
        const sealed = codec.reseal(storedBody(r), bodyAad(r.conversation_id, r.id));
        update.cids.push(r.conversation_id);
        update.seqs.push(r.seq.toString());
        update.cts.push(sealed.ciphertext.toString("base64"));
        update.ivs.push(sealed.iv.toString("base64"));
        update.tags.push(sealed.tag.toString("base64"));
        update.old.push(r.key_version ?? 0);
      } catch (error) {
        // The row keeps its old body; operators see the count in `chatctl keys status`. No body in the log.
        failedThisPass++;
        c.failed++;
        logger.error({ err: error, conversationId: r.conversation_id, seq: r.seq.toString(), keyVersion: r.key_version }, "key rotation could not open a row");
      }
    }
    if (update.cids.length > 0) {
      const result = await db.query(sql.unsafe`
        UPDATE messages AS m
        SET body = NULL, ciphertext = decode(u.ct, 'base64'), iv = decode(u.iv, 'base64'), tag = decode(u.tag, 'base64'), key_version = ${target}
        FROM unnest(${sql.array(update.cids, "uuid")}, ${sql.array(update.seqs, "int8")}, ${sql.array(update.cts, "text")},
                    ${sql.array(update.ivs, "text")}, ${sql.array(update.tags, "text")}, ${sql.array(update.old, "int4")})
             AS u(conversation_id, seq, ct, iv, tag, old_version)
        WHERE m.conversation_id = u.conversation_id AND m.seq = u.seq AND COALESCE(m.key_version, 0) = u.old_version`);
      c.rewritten += result.rowCount;
    }
    const last = rows[rows.length - 1]!;
    c.afterConversationId = last.conversation_id;
    c.afterSeq = last.seq.toString();
    await saveCheckpoint(redis, keys, c);
    await options.onBatch?.(c);
    if (deps.pauseMs) await new Promise((r) => setTimeout(r, deps.pauseMs));
  }
  return c;
}

export type KeyRotationJobData = { targetVersion: number };

const jobId = (version: number) => `rotate-v${version}`;

/**
 * Enqueues the rotation to `targetVersion` (idempotent: one job per version; a failed one is
 * retried). Returns the job id.
 */
export async function requestKeyRotation(redisUrl: string, keys: RedisKeys, targetVersion: number): Promise<string> {
  const connection = createRedis(redisUrl);
  const queue = new Queue<KeyRotationJobData>(keys.keyRotationQueue, { connection, prefix: keys.bullPrefix });
  try {
    const existing = await queue.getJob(jobId(targetVersion));
    const state = existing ? await existing.getState() : null;
    if (existing && state === "failed") await existing.retry();
    else if (existing && state === "completed") await existing.remove();
    if (!existing || state === "completed") {
      await queue.add("rotate", { targetVersion }, {
        jobId: jobId(targetVersion), attempts: 10, backoff: { type: "exponential", delay: 1000 },
        removeOnComplete: { count: 10 }, removeOnFail: { count: 100 },
      });
    }
    return jobId(targetVersion);
  } finally {
    await queue.close().catch(() => {});
    connection.disconnect();
  }
}

export type KeyRotationStatus = {
  activeVersion: number;
  rowsByKeyVersion: Record<string, number>;
  checkpoint: RotationCheckpoint | null;
  job: { id: string; state: string; attemptsMade: number; failedReason?: string } | null;
};

/** What `chatctl keys status` prints. */
export async function keyRotationStatus(deps: { db: Database; redisUrl: string; keys: RedisKeys; activeVersion: number }): Promise<KeyRotationStatus> {
  const connection = createRedis(deps.redisUrl);
  const queue = new Queue<KeyRotationJobData>(deps.keys.keyRotationQueue, { connection, prefix: deps.keys.bullPrefix });
  try {
    const checkpoint = await findRotationCheckpoint(connection, deps.keys);
    const job = await queue.getJob(jobId(checkpoint?.targetVersion ?? deps.activeVersion));
    return {
      activeVersion: deps.activeVersion,
      rowsByKeyVersion: await countRowsByKeyVersion(deps.db),
      checkpoint,
      job: job ? { id: String(job.id), state: await job.getState(), attemptsMade: job.attemptsMade, ...(job.failedReason ? { failedReason: job.failedReason } : {}) } : null,
    };
  } finally {
    await queue.close().catch(() => {});
    connection.disconnect();
  }
}

export type KeyRotationWorker = { close(): Promise<void> };

/**
 * The BullMQ worker of the `key-rotation` queue (run by the inbox-worker process). One job at a
 * time. A job for another version than this process's active key is refused (UnrecoverableError):
 * deploy the new keyring everywhere first. close() stops between batches and puts the job back in
 * the waiting list, so the next worker resumes from the checkpoint; a killed worker's job comes
 * back after `lockMs`.
 */
export function createKeyRotationWorker(deps: Omit<KeyRotationDeps, "redis"> & { redisUrl: string; lockMs?: number }): KeyRotationWorker {
  const connection = createRedis(deps.redisUrl, { maxRetriesPerRequest: null });
  const redis = createRedis(deps.redisUrl);
  const lockMs = deps.lockMs ?? 30_000;
  let closing = false;
  const worker = new Worker<KeyRotationJobData>(deps.keys.keyRotationQueue, async (job: Job<KeyRotationJobData>, token?: string) => {
    if (job.data.targetVersion !== deps.codec.sealVersion) {
      throw new UnrecoverableError(`this worker seals with key version ${deps.codec.sealVersion}, the job wants ${job.data.targetVersion}`);
    }
    const c = await runKeyRotation({ ...deps, redis }, {
      shouldStop: () => closing,
      onBatch: (cp) => job.updateProgress({ pass: cp.pass, rewritten: cp.rewritten, failed: cp.failed }),
    });
    if (c.state !== "done") {
      await job.moveToWait(token);
      throw new WaitingError();
    }
    return { rewritten: c.rewritten, failed: c.failed };
  }, {
    connection, prefix: deps.keys.bullPrefix, concurrency: 1,
    lockDuration: lockMs, stalledInterval: Math.max(1000, Math.floor(lockMs / 2)), maxStalledCount: 100,
  });
  worker.on("failed", (job, err) => deps.logger.warn({ jobId: job?.id, err }, "key rotation job failed"));
  worker.on("error", (err) => deps.logger.warn({ err }, "key rotation worker error"));
  let closed: Promise<void> | undefined;
  return {
    close() {
      closing = true;
      closed ??= (async () => {
        await worker.close().catch(() => {});
        connection.disconnect();
        redis.disconnect();
      })();
      return closed;
    },
  };
}
