import { randomUUID } from "node:crypto";
import { AppError, conversationNotFound } from "../errors/index.js";
import {
  activateConversation,
  type Database,
  type MembershipChange,
  type MessageRecord,
  type NewEvent,
} from "../storage/index.js";
import type { Logger, Metrics } from "../telemetry/index.js";
import { bodyAad, type BodyCodec } from "./body-codec.js";
import { EventKind, type ActorCommand, type ActorResult, type CommittedEvent, type ConversationState } from "./commands.js";
import { outboxForEvents } from "./outbox-events.js";
import type { GroupCommitter } from "./group-commit.js";

/** Receives committed events after the transaction commits; failures are logged, never surfaced. */
export type EventSink = {
  publish(conversationId: string, events: CommittedEvent[]): Promise<void>;
};

export type ActorDeps = {
  db: Database;
  /** The node-wide, coalescing write path (group commit across conversations). */
  committer: GroupCommitter;
  codec: BodyCodec;
  sink: EventSink;
  metrics: Metrics;
  logger: Logger;
  mailboxLimit: number;
  maxBatch: number;
  /** Whether Kafka payloads carry the body (plaintext or sealed); see docs/kafka.md. */
  outboxBody: (event: CommittedEvent) => unknown;
};

type Envelope = { command: ActorCommand; resolve: (r: ActorResult) => void; reject: (e: unknown) => void };

/**
 * The single writer of one conversation. Commands queue in a bounded mailbox and are committed in
 * batches: one transaction assigns consecutive seqs to every accepted command, conditional on the
 * epoch this actor got at activation. After commit the events go to the sink, then callers hear back.
 * Any commit failure stops the actor (its cached state may be stale); the host drops it and the next
 * command activates a fresh one that rereads the truth from PostgreSQL.
 */
export class ConversationActor {
  private readonly mailbox: Envelope[] = [];
  private state: ConversationState | null = null;
  /** Set synchronously while the drain loop runs (one at a time); `draining` is that loop. */
  private running = false;
  private draining: Promise<void> = Promise.resolve();
  private stopped = false;
  lastUsedMs = Date.now();

  constructor(
    readonly conversationId: string,
    private readonly deps: ActorDeps,
    private readonly onStop: (actor: ConversationActor) => void,
  ) {}

  get busy(): boolean {
    return this.running || this.mailbox.length > 0;
  }

  get isStopped(): boolean {
    return this.stopped;
  }

  /** Queues a command; RESOURCE_EXHAUSTED when the mailbox is full, NOT_OWNER once stopped. */
  tell(command: ActorCommand): Promise<ActorResult> {
    if (this.stopped) return Promise.reject(new AppError("not_owner", "actor stopped"));
    if (this.mailbox.length >= this.deps.mailboxLimit) {
      return Promise.reject(new AppError("resource_exhausted", "conversation is overloaded", { details: { retryAfterMs: 100 } }));
    }
    this.lastUsedMs = Date.now();
    return new Promise((resolve, reject) => {
      this.mailbox.push({ command, resolve, reject });
      if (!this.running) this.draining = this.drain();
    });
  }

  /**
   * Stops taking commands; the batch in flight finishes; queued commands get NOT_OWNER so their
   * callers retry wherever the conversation lives now. Resolves when the actor is idle.
   */
  async stop(reason = "actor passivated"): Promise<void> {
    if (!this.stopped) {
      this.stopped = true;
      this.failQueued(new AppError("not_owner", reason));
    }
    await this.draining; // the batch in flight finishes
    this.onStop(this);
  }

  private failQueued(error: AppError): void {
    for (const envelope of this.mailbox.splice(0)) envelope.reject(error);
  }

  private async drain(): Promise<void> {
    this.running = true;
    try {
      while (this.mailbox.length > 0 && !this.stopped) {
        if (this.state === null) {
          const activation = await activateConversation(this.deps.db, this.conversationId);
          if (activation === null) {
            this.failQueued(conversationNotFound());
            this.stopped = true;
            break;
          }
          this.state = activation;
          this.deps.metrics.actorActivations.inc();
        }
        const batch = this.mailbox.splice(0, this.deps.maxBatch);
        try {
          await this.process(batch, this.state);
        } catch (error) {
          // Nothing of the batch was answered: every caller hears of the failure.
          const appError = AppError.from(error);
          const answer = appError.code === "not_owner" ? appError : new AppError("unavailable", "try again", { cause: error });
          for (const envelope of batch) envelope.reject(answer);
          throw error;
        }
      }
    } catch (error) {
      const appError = AppError.from(error);
      if (appError.code === "not_owner") this.deps.metrics.actorFenced.inc();
      else this.deps.logger.error({ err: error, conversationId: this.conversationId }, "actor failed");
      this.stopped = true;
      this.failQueued(appError.code === "not_owner" ? appError : new AppError("unavailable", "try again", { cause: error }));
    } finally {
      this.running = false;
      this.lastUsedMs = Date.now();
      if (this.stopped) this.onStop(this);
    }
  }

  /** Plans a batch against the cached state, commits it, publishes it, answers the callers. */
  private async process(batch: Envelope[], state: ConversationState): Promise<void> {
    const { codec } = this.deps;
    const existing = await this.findExisting(batch);
    const fromSeq = state.lastSeq;
    const events: NewEvent[] = [];
    const committed: CommittedEvent[] = [];
    const changes: MembershipChange[] = [];
    const answers: { envelope: Envelope; result: ActorResult | AppError }[] = [];
    const byKey = new Map<string, CommittedEvent>();
    const now = Date.now();

    const append = (senderId: string, kind: number, text: string, subjects: string[], key: string | null) => {
      const id = randomUUID();
      const seq = state.lastSeq + BigInt(events.length) + 1n;
      const event: CommittedEvent = {
        id, conversationId: this.conversationId, seq, senderId, kind, body: text,
        subjectUserIds: subjects, idempotencyKey: key, createdAt: now,
      };
      events.push({
        id, conversationId: this.conversationId, seq, senderId, kind, subjectUserIds: subjects,
        idempotencyKey: key, epoch: state.epoch, createdAt: now,
        body: codec.seal(text, bodyAad(this.conversationId, id)),
      });
      committed.push(event);
      return event;
    };

    for (const envelope of batch) {
      const c = envelope.command;
      try {
        if (c.type === "send") {
          if (!state.members.has(c.senderId)) throw conversationNotFound();
          if (c.idempotencyKey !== null) {
            const mapKey = `${c.senderId}\u0000${c.idempotencyKey}`;
            const prior = byKey.get(mapKey) ?? existing.get(mapKey);
            if (prior) {
              if (prior.body !== c.body) {
                throw new AppError("already_exists", "idempotency key was used with a different body");
              }
              answers.push({ envelope, result: { event: prior, duplicate: true } });
              continue;
            }
            const event = append(c.senderId, EventKind.text, c.body, [], c.idempotencyKey);
            byKey.set(mapKey, event);
            answers.push({ envelope, result: { event, duplicate: false } });
          } else {
            answers.push({ envelope, result: { event: append(c.senderId, EventKind.text, c.body, [], null), duplicate: false } });
          }
        } else {
          const event = this.planChange(c, state, changes, append);
          answers.push({ envelope, result: { event, duplicate: false } });
        }
      } catch (error) {
        answers.push({ envelope, result: AppError.from(error) });
      }
    }

    if (events.length > 0) {
      await this.deps.committer.commit({
        conversationId: this.conversationId,
        epoch: state.epoch,
        fromSeq,
        events,
        changes,
        outbox: outboxForEvents(committed, this.deps.outboxBody),
      });
      this.deps.metrics.actorBatchSize.observe(events.length);
      state.lastSeq = fromSeq + BigInt(events.length);
      await this.deps.sink.publish(this.conversationId, committed).catch((err: unknown) =>
        this.deps.logger.warn({ err, conversationId: this.conversationId }, "publish after commit failed"),
      );
    }
    for (const { envelope, result } of answers) {
      if (result instanceof AppError) envelope.reject(result);
      else envelope.resolve(result);
    }
  }

  private planChange(
    c: Exclude<ActorCommand, { type: "send" }>,
    state: ConversationState,
    changes: MembershipChange[],
    append: (senderId: string, kind: number, text: string, subjects: string[], key: string | null) => CommittedEvent,
  ): CommittedEvent | null {
    const role = state.members.get(c.actorId);
    if (role === undefined) throw conversationNotFound();
    if (state.kind !== "group") throw new AppError("failed_precondition", "direct conversations cannot be changed");
    const manager = role === "owner" || role === "admin";
    if (c.type === "rename") {
      if (!manager) throw new AppError("permission_denied", "only owners and admins can rename");
      changes.push({ op: "rename", title: c.title });
      return append(c.actorId, EventKind.renamed, c.title, [], null);
    }
    if (c.type === "addMembers") {
      if (!manager) throw new AppError("permission_denied", "only owners and admins can add members");
      const fresh = [...new Set(c.userIds)].filter((id) => !state.members.has(id));
      if (fresh.length === 0) return null;
      for (const id of fresh) state.members.set(id, "member");
      changes.push({ op: "add", userIds: fresh, role: "member" });
      return append(c.actorId, EventKind.membersAdded, "", fresh, null);
    }
    const target = state.members.get(c.userId);
    if (target === undefined) throw new AppError("not_found", "not a member");
    if (c.userId !== c.actorId) {
      if (!manager) throw new AppError("permission_denied", "only owners and admins can remove members");
      if (target === "owner" || (target === "admin" && role !== "owner")) {
        throw new AppError("permission_denied", "cannot remove a member of equal or higher role");
      }
    }
    state.members.delete(c.userId);
    changes.push({ op: "remove", userId: c.userId });
    return append(c.actorId, EventKind.memberRemoved, "", [c.userId], null);
  }

  /** Prior sends of this batch's idempotency keys, by `sender\0key`, bodies opened. */
  private async findExisting(batch: Envelope[]): Promise<Map<string, CommittedEvent>> {
    const keys: { senderId: string; key: string }[] = [];
    for (const { command: c } of batch) {
      if (c.type === "send" && c.idempotencyKey !== null) keys.push({ senderId: c.senderId, key: c.idempotencyKey });
    }
    const found = new Map<string, CommittedEvent>();
    for (const record of await this.deps.committer.lookup({ conversationId: this.conversationId, keys })) {
      found.set(`${record.senderId}\u0000${record.idempotencyKey}`, openRecord(record, this.deps.codec));
    }
    return found;
  }
}

/** A stored event with its body opened. */
export function openRecord(record: MessageRecord, codec: BodyCodec): CommittedEvent {
  const { epoch: _epoch, body, ...rest } = record;
  return { ...rest, body: codec.open(body, bodyAad(record.conversationId, record.id)) };
}
