import { topics } from "../actor/index.js";
import type { Redis, RedisKeys } from "../redis/index.js";
import { insertOutboxRows, listCoMemberIds, type Database } from "../storage/index.js";
import type { Logger } from "../telemetry/index.js";
import type { PresenceStatus } from "./presence-tracker.js";

/**
 * One coalesced presence change as published on `redisKeys(prefix).presenceChannel` (JSON text):
 * `{"v":1,"userId":"…","status":"online"|"offline","lastSeenMs":…,"changedAtMs":…,"audience":["…"]}`.
 * `audience` lists the users who share at least one conversation with `userId` (never userId
 * itself); a gateway sends a `presence` frame to its sockets of exactly those users.
 */
export type PresenceChange = {
  v: 1;
  userId: string;
  status: PresenceStatus;
  lastSeenMs: number;
  changedAtMs: number;
  audience: string[];
};

/** Most users one change is addressed to; beyond it the audience is truncated (and logged). */
export const MAX_PRESENCE_AUDIENCE = 10_000;

const GROUP = "presence-relay";
const RECLAIM_IDLE_MS = 30_000;

/**
 * Subscribes to presence changes. Uses its own connection (a duplicate of `redis`, which enters
 * subscriber mode); the returned function unsubscribes and closes it. Delivery is at most once
 * (Redis pub/sub): presence is ephemeral, a client that missed a change reads status again.
 */
export async function subscribePresence(
  redis: Redis,
  keys: RedisKeys,
  onChange: (change: PresenceChange) => void,
): Promise<() => Promise<void>> {
  const subscriber = redis.duplicate();
  subscriber.on("message", (channel: string, text: string) => {
    if (channel !== keys.presenceChannel) return;
    try {
      const change = JSON.parse(text) as PresenceChange;
      if (change.v === 1) onChange(change);
    } catch {
      // A malformed message is dropped; nothing else listens on this channel.
    }
  });
  await subscriber.subscribe(keys.presenceChannel);
  return async () => {
    await subscriber.unsubscribe().catch(() => {});
    subscriber.disconnect();
  };
}

type StreamEntries = [id: string, fields: string[]][];

function toFields(fields: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i + 1 < fields.length; i += 2) out[fields[i]!] = fields[i + 1]!;
  return out;
}

/**
 * The presence service's relay: reads transitions from the changes stream (consumer group, so
 * several presence processes share the work and a crashed one's entries are reclaimed), coalesces
 * each batch to the newest change per user, writes `presence.user.changed` outbox rows (key = user
 * id), publishes each change with its audience, then acknowledges. At least once end to end.
 */
export function createPresenceRelay(deps: {
  redis: Redis;
  /** A connection for blocking reads (maxRetriesPerRequest null). */
  blocking: Redis;
  keys: RedisKeys;
  db: Database;
  logger: Logger;
  consumer: string;
  onRelayed?: (count: number) => void;
}) {
  const { redis, blocking, keys, db, logger } = deps;
  let stopped = false;

  async function handle(entries: StreamEntries): Promise<void> {
    if (entries.length === 0) return;
    const latest = new Map<string, { userId: string; status: PresenceStatus; lastSeenMs: number; changedAtMs: number }>();
    for (const [, raw] of entries) {
      const f = toFields(raw);
      if (!f.userId) continue;
      latest.set(f.userId, {
        userId: f.userId,
        status: f.status === "online" ? "online" : "offline",
        lastSeenMs: Number(f.lastSeenMs ?? 0),
        changedAtMs: Number(f.changedAtMs ?? 0),
      });
    }
    const changes = [...latest.values()];
    await insertOutboxRows(db, changes.map((c) => {
      const eventId = `presence:${c.userId}:${c.changedAtMs}:${c.status}`;
      return {
        topic: topics.presenceChanged,
        key: c.userId,
        eventId,
        payload: { version: 1, eventId, userId: c.userId, status: c.status, lastSeenMs: c.lastSeenMs, changedAtMs: c.changedAtMs },
      };
    }));
    for (const c of changes) {
      let audience = await listCoMemberIds(db, c.userId, MAX_PRESENCE_AUDIENCE + 1);
      if (audience.length > MAX_PRESENCE_AUDIENCE) {
        logger.warn({ userId: c.userId, limit: MAX_PRESENCE_AUDIENCE }, "presence audience truncated");
        audience = audience.slice(0, MAX_PRESENCE_AUDIENCE);
      }
      const message: PresenceChange = { v: 1, ...c, audience };
      await redis.publish(keys.presenceChannel, JSON.stringify(message));
    }
    await redis.xack(keys.presenceChanges, GROUP, ...entries.map(([id]) => id));
    deps.onRelayed?.(changes.length);
  }

  return {
    /** Runs until stop(); errors are logged and retried after a pause. */
    async run(): Promise<void> {
      await redis.xgroup("CREATE", keys.presenceChanges, GROUP, "0", "MKSTREAM").catch((error: Error) => {
        if (!/BUSYGROUP/.test(error.message)) throw error;
      });
      let lastReclaim = 0;
      while (!stopped) {
        try {
          if (Date.now() - lastReclaim > RECLAIM_IDLE_MS / 2) {
            lastReclaim = Date.now();
            const claimed = (await redis.xautoclaim(keys.presenceChanges, GROUP, deps.consumer, RECLAIM_IDLE_MS, "0-0", "COUNT", 500)) as [string, StreamEntries];
            await handle(claimed[1].filter((e) => e[1] !== null));
          }
          const read = (await blocking.xreadgroup(
            "GROUP", GROUP, deps.consumer, "COUNT", 500, "BLOCK", 500, "STREAMS", keys.presenceChanges, ">",
          )) as [string, StreamEntries][] | null;
          if (read) for (const [, entries] of read) await handle(entries);
        } catch (error) {
          if (stopped) break;
          logger.warn({ err: error }, "presence relay failed, retrying");
          await new Promise((r) => setTimeout(r, 500));
        }
      }
    },
    stop(): void {
      stopped = true;
    },
  };
}
