import { AppError } from "../errors/index.js";
import {
  commitBatches,
  listMessagesByIdempotencyKey,
  type Commit,
  type Database,
  type MessageRecord,
} from "../storage/index.js";
import type { Metrics } from "../telemetry/index.js";
import { Coalescer } from "../batching/index.js";

export type IdempotencyLookup = { conversationId: string; keys: { senderId: string; key: string }[] };

/**
 * The node-wide write path of all actors: idempotency lookups and batch commits of different
 * conversations are coalesced into shared queries and transactions (DESIGN §3 "batching across
 * conversations"). A fenced conversation fails alone with NOT_OWNER; the rest commit.
 */
export function createGroupCommitter(db: Database, metrics: Metrics, options: { parallel: number; maxEvents: number }) {
  const lookups = new Coalescer<IdempotencyLookup, MessageRecord[]>(
    async (reqs) => {
      const found = await listMessagesByIdempotencyKey(db, reqs.flatMap((r) => r.keys.map((k) => ({ conversationId: r.conversationId, ...k }))));
      return reqs.map((r) => found.filter((m) => m.conversationId === r.conversationId));
    },
    { parallel: options.parallel, maxWeight: options.maxEvents, weight: (r) => r.keys.length },
  );
  const commits = new Coalescer<Commit, AppError | null>(
    async (reqs) => {
      const started = performance.now();
      const fenced = await commitBatches(db, reqs);
      metrics.actorCommitDuration.observe((performance.now() - started) / 1000);
      metrics.groupCommitConversations.observe(reqs.length);
      return reqs.map((r) => (fenced.has(r.conversationId) ? new AppError("not_owner", "conversation epoch moved on") : null));
    },
    { parallel: options.parallel, maxWeight: options.maxEvents, weight: (r) => Math.max(1, r.events.length) },
  );
  return {
    /** Stored messages of this conversation under any of the (sender, key) pairs. */
    lookup(req: IdempotencyLookup): Promise<MessageRecord[]> {
      return req.keys.length === 0 ? Promise.resolve([]) : lookups.submit(req);
    },
    /** Commits one actor batch; throws NOT_OWNER when its epoch is stale. */
    async commit(commit: Commit): Promise<void> {
      const error = await commits.submit(commit);
      if (error) throw error;
    },
  };
}

export type GroupCommitter = ReturnType<typeof createGroupCommitter>;
