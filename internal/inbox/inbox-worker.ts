import { Queue, UnrecoverableError, Worker, type Job } from "bullmq";
import { EventKind } from "../actor/index.js";
import type { PresenceTracker } from "../presence/index.js";
import { createRedis, type Redis, type RedisKeys } from "../redis/index.js";
import { findEventHeader, listStaleInboxConversations, refreshInboxForConversation, type Database } from "../storage/index.js";
import type { Logger } from "../telemetry/index.js";
import { jobOptions, notificationJobId, type InboxJobData, type JobPolicy, type NotificationJobData } from "./inbox-queue.js";
import type { NotificationSink } from "./notification-sink.js";

export type InboxWorkerOptions = {
  redisUrl: string;
  keys: RedisKeys;
  db: Database;
  presence: PresenceTracker;
  sink: NotificationSink;
  logger: Logger;
  policy: JobPolicy;
  concurrency: number;
  /** BullMQ lock; a crashed worker's active jobs run again after about this long. */
  lockMs: number;
  /** Period of the repair sweep for missing/stale inbox rows; 0 = off. */
  reconcileMs: number;
  onProcessed?: (queue: "inbox" | "notify") => void;
};

/** Dead letters keep the original queue, id, data and last error for operators. */
export type DeadLetter = { queue: string; jobId: string; name: string; data: unknown; failedReason: string; attemptsMade: number; failedAtMs: number };

/**
 * Warns loudly unless Redis evicts nothing: BullMQ keeps jobs and locks in Redis, and an evicting
 * policy silently drops them. Returns the policy seen ("unknown" when CONFIG is not allowed).
 */
export async function checkNoEviction(redis: Redis, logger: Logger): Promise<string> {
  try {
    const reply = (await redis.config("GET", "maxmemory-policy")) as string[];
    const policy = reply[1] ?? "unknown";
    if (policy !== "noeviction") {
      logger.error({ policy }, "REDIS maxmemory-policy IS NOT noeviction: queued jobs can be silently evicted; set `maxmemory-policy noeviction`");
    }
    return policy;
  } catch (error) {
    logger.warn({ err: error }, "could not read redis maxmemory-policy (CONFIG refused?); make sure it is noeviction");
    return "unknown";
  }
}

/**
 * The inbox worker: one BullMQ worker for inbox jobs, one for notifications, a dead-letter queue
 * and the repair sweep. Inbox jobs recompute the conversation's inbox rows from seqs (idempotent:
 * duplicates, retries and crashed attempts converge to the same rows), then queue a notification
 * for every member other than the sender who is offline and has not read the message.
 */
export function createInboxWorker(options: InboxWorkerOptions) {
  const { keys, db, presence, sink, logger, policy } = options;
  const connection = createRedis(options.redisUrl, { maxRetriesPerRequest: null });
  const common = { connection, prefix: keys.bullPrefix };
  const notifyQueue = new Queue<NotificationJobData>(keys.notifyQueue, { ...common, defaultJobOptions: jobOptions(policy) });
  const deadQueue = new Queue<DeadLetter>(keys.deadQueue, { ...common, defaultJobOptions: { removeOnComplete: false, removeOnFail: false } });
  const workerOptions = {
    ...common,
    concurrency: options.concurrency,
    lockDuration: options.lockMs,
    stalledInterval: Math.max(1_000, Math.floor(options.lockMs / 2)),
    maxStalledCount: 5,
    autorun: false,
  };

  async function processInbox(job: Job<InboxJobData>): Promise<{ members: number; notified: number }> {
    const { conversationId } = job.data;
    if (typeof conversationId !== "string" || !/^\d+$/.test(job.data.seq ?? "")) throw new UnrecoverableError("malformed inbox job");
    const seq = BigInt(job.data.seq);
    const counts = await refreshInboxForConversation(db, conversationId);
    const header = await findEventHeader(db, conversationId, seq);
    if (header === null) throw new UnrecoverableError(`event ${conversationId}:${seq} does not exist`);
    if (header.kind !== EventKind.text) return { members: counts.length, notified: 0 };
    const candidates = counts.filter((c) => c.userId !== header.senderId && c.readSeq < seq);
    if (candidates.length === 0) return { members: counts.length, notified: 0 };
    const statuses = await presence.batchGetStatus(candidates.map((c) => c.userId));
    const offline = candidates.filter((_, i) => statuses[i]!.status === "offline");
    if (offline.length > 0) {
      await notifyQueue.addBulk(offline.map((c) => ({
        name: "message",
        data: {
          userId: c.userId, conversationId, seq: seq.toString(), messageId: header.id, senderId: header.senderId,
          unreadCount: c.unreadCount.toString(), mentionCount: c.mentionCount.toString(),
        },
        opts: { jobId: notificationJobId(conversationId, seq, c.userId) },
      })));
    }
    return { members: counts.length, notified: offline.length };
  }

  async function processNotification(job: Job<NotificationJobData>): Promise<void> {
    const d = job.data;
    await sink.send({ id: job.id ?? notificationJobId(d.conversationId, d.seq, d.userId), type: "message", ...d, createdAtMs: job.timestamp });
  }

  const inboxWorker = new Worker<InboxJobData>(keys.inboxQueue, async (job) => {
    const result = await processInbox(job);
    options.onProcessed?.("inbox");
    return result;
  }, workerOptions);
  const notifyWorker = new Worker<NotificationJobData>(keys.notifyQueue, async (job) => {
    await processNotification(job);
    options.onProcessed?.("notify");
  }, workerOptions);

  const toDeadLetter = (queueName: string) => async (job: Job | undefined, error: Error) => {
    if (!job) return;
    const final = error.name === "UnrecoverableError" || job.attemptsMade >= (job.opts.attempts ?? 1);
    logger.warn({ queue: queueName, jobId: job.id, attempt: job.attemptsMade, final, err: error }, "job failed");
    if (!final) return;
    const letter: DeadLetter = {
      queue: queueName, jobId: String(job.id), name: job.name, data: job.data,
      failedReason: error.message.slice(0, 1000), attemptsMade: job.attemptsMade, failedAtMs: Date.now(),
    };
    await deadQueue.add("dead", letter, { jobId: `${queueName}_${job.id}` }).catch((err: unknown) =>
      logger.error({ err, jobId: job.id }, "could not move job to the dead-letter queue (it stays in failed)"));
  };
  inboxWorker.on("failed", (job, error) => void toDeadLetter(keys.inboxQueue)(job, error));
  notifyWorker.on("failed", (job, error) => void toDeadLetter(keys.notifyQueue)(job, error));
  for (const w of [inboxWorker, notifyWorker]) w.on("error", (error) => logger.warn({ err: error }, "worker error"));

  let reconcileTimer: NodeJS.Timeout | undefined;
  let reconciling = false;
  /** Repairs up to `limit` conversations with missing or stale inbox rows; returns how many. */
  async function reconcile(limit = 200): Promise<number> {
    if (reconciling) return 0;
    reconciling = true;
    try {
      const stale = await listStaleInboxConversations(db, limit);
      for (const conversationId of stale) await refreshInboxForConversation(db, conversationId);
      if (stale.length > 0) logger.info({ conversations: stale.length }, "inbox rows repaired");
      return stale.length;
    } finally {
      reconciling = false;
    }
  }

  return {
    notifyQueue,
    deadQueue,
    reconcile,
    async start(): Promise<void> {
      await checkNoEviction(connection, logger);
      void inboxWorker.run();
      void notifyWorker.run();
      if (options.reconcileMs > 0) {
        reconcileTimer = setInterval(() => {
          reconcile().catch((error: unknown) => logger.warn({ err: error }, "inbox repair sweep failed"));
        }, options.reconcileMs);
        reconcileTimer.unref();
      }
    },
    /** Stops taking jobs, lets active ones finish, closes the queues and the connection. */
    async close(): Promise<void> {
      clearInterval(reconcileTimer);
      const steps = [() => inboxWorker.close(), () => notifyWorker.close(), () => notifyQueue.close(), () => deadQueue.close()];
      for (const step of steps) await step().catch((error: unknown) => logger.warn({ err: error }, "inbox worker close step failed"));
      connection.disconnect();
    },
  };
}

export type InboxWorker = ReturnType<typeof createInboxWorker>;
