import { AppError } from "../errors/index.js";
import type { ActorCommand, ActorResult } from "./commands.js";
import { ConversationActor, type ActorDeps } from "./conversation-actor.js";

export type ActorHostOptions = ActorDeps & {
  /** Idle actors are passivated after this long. */
  idleMs: number;
  /** Live actors at most; over it the least recently used idle ones are passivated. */
  maxLive: number;
  /**
   * Whether this node may own the conversation now (ring placement and a valid lease). Checked on
   * every command, so an actor is never created for a key the node has just lost. Default: always.
   */
  owns?: (conversationId: string) => boolean;
};

/** Local conversation actors of one node: creates them on demand, passivates idle ones. */
export class ActorHost {
  private readonly actors = new Map<string, ConversationActor>();
  private readonly sweeper: NodeJS.Timeout;
  private closed = false;

  constructor(private readonly options: ActorHostOptions) {
    this.sweeper = setInterval(() => this.sweep(), Math.max(50, Math.floor(options.idleMs / 2)));
    this.sweeper.unref();
  }

  get liveCount(): number {
    return this.actors.size;
  }

  /** Runs a command on the local actor for the conversation, activating it when needed. */
  tell(conversationId: string, command: ActorCommand): Promise<ActorResult> {
    if (this.closed) return Promise.reject(new AppError("not_owner", "node is shutting down"));
    if (this.options.owns && !this.options.owns(conversationId)) {
      return Promise.reject(new AppError("not_owner", "conversation is owned elsewhere"));
    }
    let actor = this.actors.get(conversationId);
    if (actor === undefined || actor.isStopped) {
      actor = new ConversationActor(conversationId, this.options, (a) => this.forget(a));
      this.actors.set(conversationId, actor);
      this.options.metrics.actorsLive.set(this.actors.size);
      if (this.actors.size > this.options.maxLive) this.evictIdle(this.actors.size - this.options.maxLive);
    }
    return actor.tell(command);
  }

  /** Stops the actors whose conversations match; their batches in flight finish first. */
  async release(predicate: (conversationId: string) => boolean, reason: string): Promise<number> {
    const lost = [...this.actors.values()].filter((a) => predicate(a.conversationId));
    await Promise.all(lost.map((a) => a.stop(reason)));
    return lost.length;
  }

  /** Stops every actor (batches in flight finish) and refuses new commands. Idempotent. */
  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.sweeper);
    await this.release(() => true, "node is shutting down");
  }

  private forget(actor: ConversationActor): void {
    if (this.actors.get(actor.conversationId) === actor) this.actors.delete(actor.conversationId);
    this.options.metrics.actorsLive.set(this.actors.size);
  }

  private sweep(): void {
    const cutoff = Date.now() - this.options.idleMs;
    for (const actor of this.actors.values()) {
      if (!actor.busy && actor.lastUsedMs < cutoff) void actor.stop();
    }
  }

  private evictIdle(count: number): void {
    const idle = [...this.actors.values()].filter((a) => !a.busy).sort((a, b) => a.lastUsedMs - b.lastUsedMs);
    for (const actor of idle.slice(0, count)) void actor.stop();
  }
}
