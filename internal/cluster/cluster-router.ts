import { randomUUID } from "node:crypto";
import type { TellRequest } from "../gen/chat/cluster/v1/cluster_pb.js";
import type { ActorCommand, ActorResult } from "../actor/index.js";
import { AppError } from "../errors/index.js";
import type { Logger, Metrics } from "../telemetry/index.js";
import { ActorClients, decodeCommand, encodeCommand } from "./actor-rpc.js";
import type { Member, Membership } from "./membership.js";
import { Rendezvous } from "./rendezvous.js";

/** What the router needs of the local actor host. */
export type LocalActors = {
  tell(conversationId: string, command: ActorCommand): Promise<ActorResult>;
  release(predicate: (conversationId: string) => boolean, reason: string): Promise<number>;
};

export type ClusterRouterOptions = {
  nodeId: string;
  membership: Membership;
  actors: LocalActors;
  logger: Logger;
  metrics: Metrics;
  /** Deadline of one forwarded call. */
  forwardDeadlineMs: number;
  /** Total time a call may spend being retried across owners before UNAVAILABLE. */
  routeTimeoutMs: number;
};

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Routes actor commands to the owning node: runs them locally when the ring places the
 * conversation here (and the lease is valid), else forwards them over gRPC. NOT_OWNER and
 * unreachable owners refresh the member list and retry with backoff until routeTimeoutMs. Sends
 * without an idempotency key get one here, so retries after an unknown outcome cannot duplicate.
 */
export class ClusterRouter {
  private ring = new Rendezvous([]);
  private byId = new Map<string, Member>();
  private readonly clients: ActorClients;

  constructor(private readonly o: ClusterRouterOptions) {
    this.clients = new ActorClients(o.nodeId, o.forwardDeadlineMs);
    o.membership.on("change", (members: Member[]) => this.apply(members));
    o.membership.on("lost", () => {
      void o.actors.release(() => true, "lease lapsed");
    });
    this.apply([...o.membership.view]);
  }

  private apply(members: Member[]): void {
    this.ring = new Rendezvous(members.map((m) => m.nodeId));
    this.byId = new Map(members.map((m) => [m.nodeId, m]));
    this.clients.retain(new Set(members.filter((m) => m.nodeId !== this.o.nodeId).map((m) => m.grpcAddress)));
    this.o.logger.info({ members: this.ring.members }, "ring changed");
    void this.o.actors.release((id) => !this.ownsLocally(id), "ownership moved");
  }

  /** The node the ring places the conversation on now (undefined while the ring is empty). */
  ownerOf(conversationId: string): string | undefined {
    return this.ring.owner(conversationId);
  }

  /** Whether this node may run the conversation's actor right now. */
  ownsLocally(conversationId: string): boolean {
    return this.ring.owner(conversationId) === this.o.nodeId && this.o.membership.hasValidLease();
  }

  get members(): readonly string[] {
    return this.ring.members;
  }

  async tell(conversationId: string, command: ActorCommand): Promise<ActorResult> {
    const cmd: ActorCommand =
      command.type === "send" && command.idempotencyKey === null ? { ...command, idempotencyKey: `auto:${randomUUID()}` } : command;
    const deadline = Date.now() + this.o.routeTimeoutMs;
    for (let attempt = 0; ; attempt++) {
      const owner = this.ring.owner(conversationId);
      try {
        if (owner === undefined) throw new AppError("unavailable", "no chat-node holds a lease yet");
        if (owner === this.o.nodeId) {
          if (!this.o.membership.hasValidLease()) throw new AppError("not_owner", "lease not valid");
          this.o.metrics.forwardedCalls.inc({ target: "local" });
          return await this.o.actors.tell(conversationId, cmd);
        }
        const member = this.byId.get(owner)!;
        this.o.metrics.forwardedCalls.inc({ target: "remote" });
        return await this.clients.tell(member.grpcAddress, encodeCommand(conversationId, cmd));
      } catch (error) {
        const appError = AppError.from(error);
        const retryable = appError.code === "not_owner" || appError.code === "unavailable" || appError.code === "deadline_exceeded";
        if (!retryable || Date.now() >= deadline) {
          if (appError.code === "not_owner") throw new AppError("unavailable", "conversation owner is changing; retry", { cause: error });
          throw appError;
        }
        await this.o.membership.refresh().catch(() => {});
        await sleep(Math.min(500, 20 * 2 ** Math.min(attempt, 5)) * (0.5 + Math.random() / 2));
      }
    }
  }

  /** Serves a forwarded command: runs it only if this node owns the conversation, never forwards again. */
  async handleForwarded(req: TellRequest): Promise<ActorResult> {
    const owner = this.ring.owner(req.conversationId);
    if (owner !== this.o.nodeId || !this.o.membership.hasValidLease()) {
      throw new AppError("not_owner", "not the owner", { details: owner ? { ownerNodeId: owner } : {} });
    }
    return this.o.actors.tell(req.conversationId, decodeCommand(req));
  }

  close(): void {
    this.clients.close();
  }
}
