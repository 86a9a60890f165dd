import { EventEmitter } from "node:events";
import type { Redis, RedisKeys } from "../redis/index.js";
import type { Logger } from "../telemetry/index.js";

export type Member = {
  nodeId: string;
  /** host:port of the internal gRPC ActorService. */
  grpcAddress: string;
  /** Public API base URL (for operators and owner hints). */
  apiUrl: string;
  startedAtMs: number;
  /** Live actors at the last heartbeat. */
  liveActors: number;
};

export type MembershipOptions = {
  redis: Redis;
  /** A second connection for pub/sub (a subscribed connection can do nothing else). */
  subscriber: Redis;
  keys: RedisKeys;
  self: Omit<Member, "liveActors">;
  logger: Logger;
  /** Lease lifetime; a node that misses heartbeats for this long leaves the ring. */
  leaseTtlMs: number;
  heartbeatMs: number;
  /** How often the member list is reread even without a change notification. */
  pollMs: number;
  liveActors: () => number;
};

/**
 * Lease-based membership in Redis. Each node renews `lease:<id>` (TTL leaseTtlMs) every
 * heartbeatMs and announces itself in the members hash; the member list is every hash entry whose
 * lease exists, so every node converges on the same set within pollMs of a change (immediately
 * when the change is announced on the channel). A node whose lease lapsed (paused, partitioned)
 * learns it at its next heartbeat: it emits "lost", stops owning, and joins again.
 * Events: "change" (members: Member[]), "lost".
 */
export class Membership extends EventEmitter {
  private members: Member[] = [];
  private version = "";
  private leaseValidUntilMs = 0;
  private timers: NodeJS.Timeout[] = [];
  private stopped = false;

  constructor(private readonly o: MembershipOptions) {
    super();
  }

  get view(): readonly Member[] {
    return this.members;
  }

  /**
   * True while this node's lease is certainly unexpired by its own clock (renewal sent before
   * `now - ttl`, minus a margin for clock rate differences). Ownership requires it.
   */
  hasValidLease(): boolean {
    return !this.stopped && Date.now() < this.leaseValidUntilMs;
  }

  async start(): Promise<void> {
    await this.o.subscriber.subscribe(this.o.keys.membershipChannel);
    this.o.subscriber.on("message", () => void this.refresh().catch(() => {}));
    await this.heartbeat();
    await this.refresh();
    this.timers.push(
      setInterval(() => void this.heartbeat().catch((err: unknown) => this.o.logger.warn({ err }, "heartbeat failed")), this.o.heartbeatMs),
      setInterval(() => void this.refresh().catch((err: unknown) => this.o.logger.warn({ err }, "membership refresh failed")), this.o.pollMs),
    );
  }

  /** Renews the lease; detects a lapsed lease (the node was gone for others) and rejoins. */
  async heartbeat(): Promise<void> {
    if (this.stopped) return;
    const sentAt = Date.now();
    const { redis, keys, self } = this.o;
    const info: Member = { ...self, liveActors: this.o.liveActors() };
    const results = await redis
      .multi()
      .set(keys.lease(self.nodeId), String(sentAt), "PX", this.o.leaseTtlMs, "GET")
      .hset(keys.members, self.nodeId, JSON.stringify(info))
      .exec();
    if (this.stopped) return;
    const previous = results?.[0]?.[1] as string | null | undefined;
    const hadLease = this.leaseValidUntilMs > 0;
    if (hadLease && (previous === null || previous === undefined)) {
      // Others saw this node leave; whatever it owned has moved on. Let go before owning again.
      this.leaseValidUntilMs = 0;
      this.o.logger.warn({ nodeId: self.nodeId }, "lease had lapsed: releasing ownership and rejoining");
      this.emit("lost");
    }
    const margin = Math.min(500, this.o.leaseTtlMs / 5);
    const validUntil = sentAt + this.o.leaseTtlMs - margin;
    if (Date.now() < validUntil) this.leaseValidUntilMs = validUntil;
    if (!hadLease || previous === null) await redis.publish(keys.membershipChannel, self.nodeId);
  }

  /** Rereads the member list; emits "change" when the set of live members differs. */
  async refresh(): Promise<readonly Member[]> {
    const { redis, keys } = this.o;
    const entries = await redis.hgetall(keys.members);
    const ids = Object.keys(entries).sort();
    const leases = ids.length > 0 ? await redis.mget(...ids.map((id) => keys.lease(id))) : [];
    const live: Member[] = [];
    const dead: string[] = [];
    ids.forEach((id, i) => {
      if (leases[i] === null) dead.push(id);
      else live.push(JSON.parse(entries[id]!) as Member);
    });
    if (dead.length > 0) await redis.hdel(keys.members, ...dead);
    const version = live.map((m) => `${m.nodeId}@${m.startedAtMs}`).join(",");
    this.members = live;
    if (version !== this.version) {
      this.version = version;
      this.emit("change", live);
    }
    return live;
  }

  /** Leaves the ring at once (graceful shutdown): others take over without waiting for the TTL. */
  async leave(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const t of this.timers) clearInterval(t);
    const { redis, keys, self } = this.o;
    this.leaseValidUntilMs = 0;
    this.members = this.members.filter((m) => m.nodeId !== self.nodeId);
    this.emit("change", this.members);
    await redis.multi().del(keys.lease(self.nodeId)).hdel(keys.members, self.nodeId).publish(keys.membershipChannel, self.nodeId).exec();
    await this.o.subscriber.unsubscribe().catch(() => {});
  }
}

/** Reads the member list without joining (for chatctl). */
export async function listMembers(redis: Redis, keys: RedisKeys): Promise<{ member: Member; leaseMsLeft: number }[]> {
  const entries = await redis.hgetall(keys.members);
  const out: { member: Member; leaseMsLeft: number }[] = [];
  for (const [id, json] of Object.entries(entries)) {
    const ttl = await redis.pttl(keys.lease(id));
    if (ttl > 0) out.push({ member: JSON.parse(json) as Member, leaseMsLeft: ttl });
  }
  return out.sort((a, b) => a.member.nodeId.localeCompare(b.member.nodeId));
}
