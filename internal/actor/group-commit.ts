import { AppError } from "../errors/index.js";
import {
  commitBatches,
  listMessagesByIdempotencyKey,
  type Commit,
  type Database,
  type MessageRecord,
} from "../storage/index.js";
import type { Metrics } from "../telemetry/index.js";

/**
 * Collects requests while `parallel` calls are in flight and runs everything that queued up as the
 * next call: no added latency when idle, one round trip for many requests under load.
 * Each request's `weight` counts toward `maxWeight` per call.
 */
class Coalescer<Req, Res> {
  private queue: { req: Req; resolve: (r: Res) => void; reject: (e: unknown) => void }[] = [];
  private running = 0;

  constructor(
    private readonly run: (reqs: Req[]) => Promise<Res[]>,
    private readonly options: { parallel: number; maxWeight: number; weight: (r: Req) => number },
  ) {}

  submit(req: Req): Promise<Res> {
    return new Promise((resolve, reject) => {
      this.queue.push({ req, resolve, reject });
      this.pump();
    });
  }

  private pump(): void {
    while (this.running < this.options.parallel && this.queue.length > 0) {
      let weight = 0;
      let n = 0;
      while (n < this.queue.length && (n === 0 || weight + this.options.weight(this.queue[n]!.req) <= this.options.maxWeight)) {
        weight += this.options.weight(this.queue[n]!.req);
        n++;
      }
      const taken = this.queue.splice(0, n);
      this.running++;
      this.run(taken.map((t) => t.req)).then(
        (results) => taken.forEach((t, i) => t.resolve(results[i]!)),
        (error: unknown) => taken.forEach((t) => t.reject(error)),
      ).finally(() => {
        this.running--;
        this.pump();
      });
    }
  }
}

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
