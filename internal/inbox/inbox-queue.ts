import { Queue } from "bullmq";
import type { CommittedEvent, EventSink } from "../actor/index.js";
import { createRedis, type Redis, type RedisKeys } from "../redis/index.js";
import { Coalescer } from "../batching/index.js";
import type { Logger } from "../telemetry/index.js";

/** Data of one inbox job: a committed conversation event (the worker rereads the truth from PostgreSQL). */
export type InboxJobData = { conversationId: string; seq: string; kind: number; senderId: string };

/** Data of one notification job: a text message an offline member has not read. */
export type NotificationJobData = {
  userId: string;
  conversationId: string;
  seq: string;
  messageId: string;
  senderId: string;
  unreadCount: string;
  mentionCount: string;
};

/** Job id of an event: `<conversationId>_<seq>` (BullMQ refuses ':' in custom ids), so a duplicate add is a no-op. */
export const inboxJobId = (conversationId: string, seq: bigint | string) => `${conversationId}_${seq}`;
export const notificationJobId = (conversationId: string, seq: bigint | string, userId: string) => `${conversationId}_${seq}_${userId}`;

export type JobPolicy = { attempts: number; backoffMs: number };

/** Completed jobs are kept this long so a re-added job id is recognised as a duplicate. */
const KEEP_COMPLETED = { age: 3600, count: 100_000 };
/** Failed jobs (before they reach the dead-letter queue, and after) stay visible this long. */
const KEEP_FAILED = { age: 7 * 86_400, count: 100_000 };

export type InboxQueue = { queue: Queue<InboxJobData>; close(): Promise<void> };

/** BullMQ queue options shared by producers and workers: retries with exponential backoff. */
export function jobOptions(policy: JobPolicy) {
  return {
    attempts: policy.attempts,
    backoff: { type: "exponential" as const, delay: policy.backoffMs },
    removeOnComplete: KEEP_COMPLETED,
    removeOnFail: KEEP_FAILED,
  };
}

/**
 * The producer side of the inbox queue, for chat-nodes. Its Redis connection retries a command
 * twice at most, so a Redis outage fails enqueues quickly instead of stalling actors.
 */
export function createInboxQueue(redisUrl: string, keys: RedisKeys, policy: JobPolicy): InboxQueue {
  const connection: Redis = createRedis(redisUrl);
  const queue = new Queue<InboxJobData>(keys.inboxQueue, {
    connection,
    prefix: keys.bullPrefix,
    defaultJobOptions: jobOptions(policy),
  });
  return {
    queue,
    async close() {
      await queue.close().catch(() => {});
      connection.disconnect();
    },
  };
}

/**
 * The EventSink that enqueues one inbox job per committed event, after commit. When enqueueing
 * fails (Redis down, timeout) the events are only logged: unread counts do not depend on the job
 * (they derive from seqs; ListInbox and the worker's repair sweep compute them from PostgreSQL).
 * What is lost then is the offline notification of those messages.
 */
export function createInboxSink(queue: Queue<InboxJobData>, logger: Logger, timeoutMs = 2_000): EventSink {
  type Job = { name: string; data: InboxJobData; opts: { jobId: string } };
  // Jobs of many actors' batches that queue up while an addBulk is in flight go in the next one.
  const bulk = new Coalescer<Job[], void>(
    async (batches) => {
      let timer: NodeJS.Timeout | undefined;
      try {
        await Promise.race([
          queue.addBulk(batches.flat()),
          new Promise((_, reject) => {
            timer = setTimeout(() => reject(new Error(`enqueue timed out after ${timeoutMs} ms`)), timeoutMs);
          }),
        ]);
      } finally {
        clearTimeout(timer);
      }
      return batches.map(() => undefined);
    },
    { parallel: 2, maxWeight: 2_000, weight: (jobs) => jobs.length },
  );
  return {
    async publish(conversationId: string, events: CommittedEvent[]) {
      if (events.length === 0) return;
      const jobs = events.map((e) => ({
        name: "event",
        data: { conversationId, seq: e.seq.toString(), kind: e.kind, senderId: e.senderId },
        opts: { jobId: inboxJobId(conversationId, e.seq) },
      }));
      try {
        await bulk.submit(jobs);
      } catch (error) {
        logger.warn({ err: error, conversationId, fromSeq: jobs[0]!.data.seq, count: jobs.length }, "inbox enqueue failed; counts stay exact (derived from seqs)");
      }
    },
  };
}
