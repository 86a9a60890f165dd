import { randomBytes } from "node:crypto";
import type { BodyCodec } from "../actor/index.js";
import { AppError, conversationNotFound, invalidArgument } from "../errors/index.js";
import type { Redis, RedisKeys } from "../redis/index.js";
import { findMemberLastSeq, listLastSeqs, listMessages, type Database } from "../storage/index.js";
import type { Logger } from "../telemetry/index.js";
import { decodeEvent, recordEvent, removedUserIds, type HubEvent } from "./event-codec.js";
import { createFanOut, type FanOut } from "./fan-out.js";

const GROUP = "hub";

/** What a subscriber of one conversation hears. Callbacks must not throw and must not block. */
export type Subscriber = {
  readonly userId: string;
  /** A persisted event: exactly once per subscription and in seq order (no gap, no duplicate). */
  onEvent(e: HubEvent): void;
  /** Typing, read receipts, presence: best effort, unordered relative to onEvent. */
  onEphemeral(e: HubEvent): void;
  /**
   * The hub ended the subscription: "removed" after delivering the event that removed the user;
   * "failed" when a gap could not be filled (the client should resume later with its last seq).
   */
  onEnd(reason: "removed" | "failed"): void;
  /** Backpressure for replay: resolves when the subscriber can take another page. */
  writable?(): Promise<void>;
};

export type Subscription = {
  readonly conversationId: string;
  /** Highest seq handed to the subscriber (or the baseline it joined at). */
  readonly delivered: bigint;
  /** Stops delivery now. Idempotent. */
  close(): void;
};

export type DeliveryHubOptions = {
  /** Commands (fan-out, XRANGE, XACK, interest). Not owned: the caller closes it. */
  redis: Redis;
  /** A dedicated connection for the blocking XREADGROUP; owned: close() disconnects it. */
  blockingRedis: Redis;
  keys: RedisKeys;
  db: Database;
  /** Opens bodies read back from PostgreSQL (they may be sealed at rest). */
  codec: BodyCodec;
  logger: Logger;
  /** Unique per process; default `<kind>-<random>`. */
  hubId?: string;
  /** Interest entries expire this long after their last refresh. Default 30 s. */
  interestTtlMs?: number;
  /** Interest refresh period. Default 5 s. */
  interestRefreshMs?: number;
  /** Safety net: compare every subscribed conversation with PostgreSQL this often. Default 15 s. */
  resyncIntervalMs?: number;
  /** Events per replay page (tail XRANGE or PostgreSQL). Default 500. */
  pageSize?: number;
  /** Called for each event handed to a subscriber (metrics). */
  onDelivered?: (source: "live" | "tail" | "db") => void;
};

export type DeliveryHub = {
  readonly hubId: string;
  /** Creates the inbound stream and its consumer group, starts reading. Call once before subscribe. */
  start(): Promise<void>;
  /**
   * Subscribes a member to a conversation: registers interest first, checks membership in
   * PostgreSQL (NOT_FOUND for a non-member or missing conversation), replays every event after
   * `lastSeq` (from the Redis tail, else PostgreSQL), then stays live. `lastSeq` null means live
   * from the conversation's current last seq. Resolves once the replay has caught up.
   */
  subscribe(conversationId: string, lastSeq: bigint | null, subscriber: Subscriber): Promise<Subscription>;
  /** Sends an ephemeral event (seq 0n) to every hub with subscribers of its conversation. */
  publishEphemeral(e: HubEvent): Promise<void>;
  stats(): { conversations: number; subscriptions: number };
  /** Stops reading, drops interest and the inbound stream. Subscribers are not notified. Idempotent. */
  close(): Promise<void>;
};

type Channel = { subs: Set<Sub>; registered: Promise<unknown> };

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

class Sub implements Subscription {
  delivered = 0n;
  /** Highest seq known to exist; catch-up runs while delivered < target. */
  target = 0n;
  /** Until the baseline is known, live events only raise the target. */
  pending = true;
  catching: Promise<void> | null = null;
  closed = false;

  constructor(
    readonly conversationId: string,
    private readonly hub: HubCore,
    readonly subscriber: Subscriber,
  ) {}

  offer(e: HubEvent): void {
    if (this.closed || e.seq <= this.delivered) return;
    if (!this.pending && e.seq === this.delivered + 1n) {
      this.deliver(e, "live");
      return;
    }
    this.raise(e.seq);
  }

  raise(seq: bigint): void {
    if (seq > this.target) this.target = seq;
    if (!this.pending && !this.closed && this.catching === null && this.delivered < this.target) {
      this.catching = this.catchUp().finally(() => { this.catching = null; });
    }
  }

  /** Starts delivery from `baseline` and resolves once caught up with what is known to exist. */
  async begin(baseline: bigint, known: bigint): Promise<void> {
    this.delivered = baseline;
    this.pending = false;
    this.raise(known);
    while (this.catching !== null) await this.catching;
  }

  private deliver(e: HubEvent, source: "live" | "tail" | "db"): void {
    this.delivered = e.seq;
    this.subscriber.onEvent(e);
    this.hub.onDelivered?.(source);
    if (removedUserIds(e).includes(this.subscriber.userId)) this.end("removed");
  }

  private async catchUp(): Promise<void> {
    let misses = 0;
    while (!this.closed && this.delivered < this.target) {
      if (this.subscriber.writable) await this.subscriber.writable();
      if (this.closed) return;
      const from = this.delivered + 1n;
      let page: { events: HubEvent[]; source: "tail" | "db" };
      try {
        page = await this.hub.fetch(this.conversationId, from, this.target);
      } catch (error) {
        page = { events: [], source: "db" };
        this.hub.logger.warn({ err: error, conversationId: this.conversationId }, "replay fetch failed");
      }
      let progressed = false;
      for (const e of page.events) {
        if (this.closed) return;
        if (e.seq <= this.delivered) continue;
        if (e.seq !== this.delivered + 1n) break;
        this.deliver(e, page.source);
        progressed = true;
      }
      if (progressed) {
        misses = 0;
      } else if (++misses > 20) {
        // The seq was announced but PostgreSQL does not show it: never skip it silently.
        this.hub.logger.error({ conversationId: this.conversationId, from: String(from) }, "gap could not be filled");
        this.end("failed");
      } else {
        await sleep(25 * misses);
      }
    }
  }

  end(reason: "removed" | "failed"): void {
    if (this.closed) return;
    this.close();
    this.subscriber.onEnd(reason);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.hub.detach(this);
  }
}

/** What subscriptions need from their hub. */
type HubCore = {
  logger: Logger;
  onDelivered?: (source: "live" | "tail" | "db") => void;
  fetch(conversationId: string, from: bigint, to: bigint): Promise<{ events: HubEvent[]; source: "tail" | "db" }>;
  detach(sub: Sub): void;
};

/** Parses XRANGE/XREADGROUP entries: fields c (conversation), s (seq), p (chat.v1.Event bytes). */
function parseEntry(fields: Buffer[] | null): HubEvent | null {
  if (!fields) return null;
  let c = "", s = "", p: Buffer | null = null;
  for (let i = 0; i + 1 < fields.length; i += 2) {
    const name = fields[i]!.toString();
    if (name === "c") c = fields[i + 1]!.toString();
    else if (name === "s") s = fields[i + 1]!.toString();
    else if (name === "p") p = fields[i + 1]!;
  }
  if (!c || !s || !p) return null;
  try {
    return decodeEvent(c, BigInt(s), new Uint8Array(p.buffer, p.byteOffset, p.byteLength));
  } catch {
    return null;
  }
}

/**
 * A delivery hub: one per gateway (and one per chat-node for Subscribe). It keeps the interest set
 * of the conversations its subscribers joined, reads its own inbound stream with a consumer group,
 * and runs every subscription's join/replay/live/gap-fill state machine (DESIGN §4). Memory is
 * bounded: nothing is buffered per subscription; replay is paged and waits for `writable()`.
 */
export function createDeliveryHub(options: DeliveryHubOptions): DeliveryHub {
  const { redis, blockingRedis, keys, db, codec, logger } = options;
  const hubId = options.hubId ?? `hub-${randomBytes(6).toString("hex")}`;
  const inbox = keys.deliveryInbox(hubId);
  const ttlMs = options.interestTtlMs ?? 30_000;
  const pageSize = options.pageSize ?? 500;
  const fanOut: FanOut = createFanOut(redis, keys);
  const channels = new Map<string, Channel>();
  const inflight = new Map<string, Promise<{ events: HubEvent[]; source: "tail" | "db" }>>();
  let closed = false;
  let loop: Promise<void> | null = null;
  const timers: NodeJS.Timeout[] = [];

  const register = (conversationId: string) =>
    redis.call("ZADD", keys.deliveryInterest(conversationId), String(Date.now() + ttlMs), hubId);

  async function ensureGroup(): Promise<void> {
    try {
      await redis.call("XGROUP", "CREATE", inbox, GROUP, "$", "MKSTREAM");
    } catch (error) {
      if (!String((error as Error).message).includes("BUSYGROUP")) throw error;
    }
    await redis.call("PEXPIRE", inbox, String(24 * 3600_000));
  }

  async function readTail(conversationId: string, from: bigint, to: bigint): Promise<HubEvent[]> {
    const reply = (await redis.callBuffer(
      "XRANGE", keys.deliveryTail(conversationId), `${from}-0`, `${to}-0`, "COUNT", String(pageSize),
    )) as [Buffer, Buffer[]][];
    return reply.map(([, fields]) => parseEntry(fields)).filter((e): e is HubEvent => e !== null);
  }

  async function readDb(conversationId: string, from: bigint, to: bigint): Promise<HubEvent[]> {
    const limit = Number(to - from + 1n < BigInt(pageSize) ? to - from + 1n : BigInt(pageSize));
    // listMessages reads "after" only for afterSeq > 0; from seq 1 ask for "before limit+1".
    const page = from === 1n
      ? await listMessages(db, conversationId, { beforeSeq: BigInt(limit) + 1n, afterSeq: 0n, limit })
      : await listMessages(db, conversationId, { beforeSeq: 0n, afterSeq: from - 1n, limit });
    return page.messages.map((m) => recordEvent(m, codec));
  }

  const core: HubCore = {
    logger,
    onDelivered: options.onDelivered,
    // Concurrent catch-ups of one conversation (many sockets after a Redis loss) share reads.
    fetch(conversationId, from, to) {
      const key = `${conversationId}|${from}|${to}`;
      let p = inflight.get(key);
      if (!p) {
        p = (async () => {
          const tail = await readTail(conversationId, from, to).catch(() => []);
          if (tail.length > 0 && tail[0]!.seq === from) return { events: tail, source: "tail" as const };
          return { events: await readDb(conversationId, from, to), source: "db" as const };
        })().finally(() => inflight.delete(key));
        inflight.set(key, p);
      }
      return p;
    },
    detach(sub) {
      const channel = channels.get(sub.conversationId);
      if (!channel) return;
      channel.subs.delete(sub);
      if (channel.subs.size === 0) {
        channels.delete(sub.conversationId);
        if (!closed) {
          redis.call("ZREM", keys.deliveryInterest(sub.conversationId), hubId).catch((err: unknown) =>
            logger.debug({ err }, "interest removal failed"));
        }
      }
    },
  };

  function dispatch(e: HubEvent): void {
    const channel = channels.get(e.conversationId);
    if (!channel) return;
    if (e.seq === 0n) {
      for (const sub of channel.subs) if (!sub.pending && !sub.closed) sub.subscriber.onEphemeral(e);
    } else {
      for (const sub of channel.subs) sub.offer(e);
    }
  }

  /** Compares subscribed conversations with PostgreSQL and fills whatever live delivery missed. */
  async function resync(conversationIds: string[], reason: string): Promise<void> {
    if (conversationIds.length === 0 || closed) return;
    try {
      const lastSeqs = await listLastSeqs(db, conversationIds);
      let behind = 0;
      for (const [conversationId, lastSeq] of lastSeqs) {
        for (const sub of channels.get(conversationId)?.subs ?? []) {
          if (sub.delivered < lastSeq) behind++;
          sub.raise(lastSeq);
        }
      }
      if (behind > 0) logger.info({ reason, behind, conversations: conversationIds.length }, "resync found missed events");
    } catch (error) {
      logger.warn({ err: error, reason }, "resync failed");
    }
  }

  async function recoverLoss(reason: string): Promise<void> {
    logger.warn({ hubId, reason }, "delivery state lost in redis; re-registering and resyncing");
    await ensureGroup();
    const ids = [...channels.keys()];
    await Promise.all(ids.map(register));
    await resync(ids, reason);
  }

  async function readLoop(): Promise<void> {
    while (!closed) {
      try {
        const reply = (await blockingRedis.callBuffer(
          "XREADGROUP", "GROUP", GROUP, hubId, "COUNT", "512", "BLOCK", "1000", "STREAMS", inbox, ">",
        )) as [Buffer, [Buffer, Buffer[] | null][]][] | null;
        if (!reply) continue;
        const ids: Buffer[] = [];
        for (const [, entries] of reply) {
          for (const [id, fields] of entries) {
            ids.push(id);
            const e = parseEntry(fields);
            if (e) dispatch(e);
          }
        }
        // Acknowledge and delete in one round trip (the inbox stays small; MAXLEN is the backstop).
        if (ids.length > 0) {
          redis.pipeline().call("XACK", inbox, GROUP, ...ids).call("XDEL", inbox, ...ids).exec()
            .catch((err: unknown) => logger.debug({ err }, "xack failed"));
        }
      } catch (error) {
        if (closed) break;
        const message = String((error as Error).message);
        if (message.includes("NOGROUP") || message.includes("no longer exists")) {
          await recoverLoss("inbound stream missing").catch((err: unknown) => logger.warn({ err }, "recovery failed"));
        } else {
          logger.warn({ err: error }, "inbound read failed");
          await sleep(500);
        }
      }
    }
  }

  async function refreshInterest(): Promise<void> {
    const ids = [...channels.keys()];
    if (ids.length === 0 || closed) return;
    const pipeline = redis.pipeline();
    const expiry = String(Date.now() + ttlMs);
    for (const id of ids) pipeline.call("ZADD", keys.deliveryInterest(id), expiry, hubId);
    pipeline.call("PEXPIRE", inbox, String(24 * 3600_000));
    const results = (await pipeline.exec()) ?? [];
    // ZADD answering 1 means our entry was gone (expired or Redis lost it): events may have missed us.
    const lost = ids.filter((_, i) => results[i]?.[1] === 1);
    if (lost.length > 0) await resync(lost, "interest entry was missing");
  }

  return {
    hubId,
    async start() {
      await ensureGroup();
      loop = readLoop();
      const refresh = setInterval(() => void refreshInterest().catch((err: unknown) => logger.warn({ err }, "interest refresh failed")),
        options.interestRefreshMs ?? 5_000);
      const safety = setInterval(() => void resync([...channels.keys()], "periodic"), options.resyncIntervalMs ?? 15_000);
      refresh.unref();
      safety.unref();
      timers.push(refresh, safety);
    },

    async subscribe(conversationId, lastSeq, subscriber) {
      if (closed) throw new AppError("unavailable", "delivery is shutting down");
      let channel = channels.get(conversationId);
      if (!channel) {
        channel = { subs: new Set(), registered: register(conversationId) };
        channels.set(conversationId, channel);
      }
      const sub = new Sub(conversationId, core, subscriber);
      // Interest first (and the sub in place, recording what arrives), then the database read:
      // everything committed after the read reaches us live, everything before is replayed.
      channel.subs.add(sub);
      try {
        await channel.registered;
        const current = await findMemberLastSeq(db, conversationId, subscriber.userId);
        if (current === null) throw conversationNotFound();
        if (lastSeq !== null && lastSeq > current) throw invalidArgument("lastSeq", "lastSeq is ahead of the conversation");
        await sub.begin(lastSeq ?? current, current);
        return sub;
      } catch (error) {
        sub.close();
        throw error;
      }
    },

    async publishEphemeral(e) {
      await fanOut(e.conversationId, [e]);
    },

    stats() {
      let subscriptions = 0;
      for (const c of channels.values()) subscriptions += c.subs.size;
      return { conversations: channels.size, subscriptions };
    },

    async close() {
      if (closed) return;
      closed = true;
      for (const t of timers) clearInterval(t);
      const ids = [...channels.keys()];
      for (const channel of channels.values()) for (const sub of channel.subs) sub.closed = true;
      channels.clear();
      const pipeline = redis.pipeline();
      for (const id of ids) pipeline.call("ZREM", keys.deliveryInterest(id), hubId);
      pipeline.call("DEL", inbox);
      await pipeline.exec().catch(() => undefined);
      blockingRedis.disconnect();
      await loop?.catch(() => undefined);
    },
  };
}
