import type { Redis, RedisKeys } from "../redis/index.js";

/** A user's presence as stored in Redis. */
export type PresenceStatus = "online" | "offline";
export type UserPresence = {
  userId: string;
  status: PresenceStatus;
  /** Last heartbeat or disconnect (epoch ms); 0 when never seen. */
  lastSeenMs: number;
};

export type PresenceTrackerOptions = {
  redis: Redis;
  keys: RedisKeys;
  /** A device entry lives this long after its last beat. */
  ttlMs: number;
  /** After the last device goes away (expired or disconnected) the user stays online this long. */
  graceMs: number;
  /** MAXLEN (approximate) of the transitions stream. */
  changesMaxLen?: number;
};

/** Lifetime of the state hash of a user nobody has seen: long enough that lastSeen stays answerable. */
const STATE_RETENTION_MS = 30 * 86_400_000;

/**
 * Records one beat or disconnect of a device and, on an offline->online transition, appends the
 * change to the transitions stream. Atomic, so concurrent beats of several devices (and several
 * presence/gateway processes) yield exactly one transition. Time is Redis server time (one clock).
 * KEYS[1] devices zset (deviceId -> expiry ms), KEYS[2] state hash, KEYS[3] due zset, KEYS[4] changes stream
 * ARGV[1] userId, ARGV[2] deviceId, ARGV[3] ttlMs, ARGV[4] graceMs, ARGV[5] "1" alive / "0" gone,
 * ARGV[6] stream MAXLEN, ARGV[7] state retention ms
 * Returns {changed (0/1), status, lastSeenMs}.
 */
const BEAT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if ARGV[5] == '1' then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[2])
else
  redis.call('ZREM', KEYS[1], ARGV[2])
end
local top = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
local liveUntil = now
if #top == 2 then liveUntil = math.max(now, tonumber(top[2])) end
local offlineAt = liveUntil + tonumber(ARGV[4])
if #top == 2 then redis.call('PEXPIRE', KEYS[1], offlineAt - now + 1000) end
local status = redis.call('HGET', KEYS[2], 'status')
local changed = 0
redis.call('HSET', KEYS[2], 'lastSeenMs', now, 'offlineAtMs', offlineAt)
if ARGV[5] == '1' and status ~= 'online' then
  status = 'online'
  changed = 1
  redis.call('HSET', KEYS[2], 'status', 'online', 'changedAtMs', now)
  redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[6], '*', 'userId', ARGV[1], 'status', 'online', 'lastSeenMs', now, 'changedAtMs', now)
end
if status == 'online' then redis.call('ZADD', KEYS[3], offlineAt, ARGV[1]) end
redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[7]))
return {changed, status or 'offline', now}
`;

/**
 * Turns a due user offline when no device is live and the grace period has ended; otherwise
 * reschedules. Atomic like BEAT, so several sweepers never publish a transition twice.
 * KEYS[1] devices, KEYS[2] state, KEYS[3] due, KEYS[4] changes; ARGV[1] userId, ARGV[2] MAXLEN, ARGV[3] graceMs
 * Returns 1 when the user turned offline, else 0.
 */
const SWEEP = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local offlineAt = tonumber(redis.call('HGET', KEYS[2], 'offlineAtMs') or '0')
local top = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if #top == 2 then offlineAt = math.max(offlineAt, tonumber(top[2]) + tonumber(ARGV[3])) end
if offlineAt > now then
  redis.call('ZADD', KEYS[3], offlineAt, ARGV[1])
  return 0
end
redis.call('ZREM', KEYS[3], ARGV[1])
if redis.call('HGET', KEYS[2], 'status') == 'online' then
  local lastSeen = redis.call('HGET', KEYS[2], 'lastSeenMs') or now
  redis.call('HSET', KEYS[2], 'status', 'offline', 'changedAtMs', now)
  redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[2], '*', 'userId', ARGV[1], 'status', 'offline', 'lastSeenMs', lastSeen, 'changedAtMs', now)
  return 1
end
return 0
`;

export type PresenceTracker = {
  /** A device's heartbeat: live for another ttlMs. Returns the user's presence after the beat. */
  heartbeat(userId: string, deviceId: string): Promise<UserPresence & { changed: boolean }>;
  /**
   * For gateways: a WebSocket connection opened (alive=true; call again about every ttlMs/3 while
   * it stays open) or closed (alive=false). A connection counts as one device.
   */
  reportConnection(userId: string, connectionId: string, alive: boolean): Promise<void>;
  getStatus(userId: string): Promise<UserPresence>;
  /** Presence of each user, in the order given. */
  batchGetStatus(userIds: readonly string[]): Promise<UserPresence[]>;
  /** Turns users whose grace period ended offline; returns how many changed. */
  sweepDue(limit?: number): Promise<number>;
  readonly ttlMs: number;
};

export function createPresenceTracker(options: PresenceTrackerOptions): PresenceTracker {
  const { redis, keys, ttlMs, graceMs } = options;
  const maxLen = String(options.changesMaxLen ?? 100_000);
  const keysOf = (userId: string) => [keys.presenceDevices(userId), keys.presenceState(userId), keys.presenceDue, keys.presenceChanges];

  const beat = async (userId: string, deviceId: string, alive: boolean) => {
    const [changed, status, now] = (await redis.eval(
      BEAT, 4, ...keysOf(userId), userId, deviceId, String(ttlMs), String(graceMs), alive ? "1" : "0", maxLen, String(STATE_RETENTION_MS),
    )) as [number, string, number];
    return { userId, status: status === "online" ? "online" : "offline", lastSeenMs: Number(now), changed: changed === 1 } as const;
  };

  return {
    ttlMs,
    heartbeat: (userId, deviceId) => beat(userId, deviceId, true),
    async reportConnection(userId, connectionId, alive) {
      await beat(userId, `conn:${connectionId}`, alive);
    },
    async getStatus(userId) {
      const [status] = await this.batchGetStatus([userId]);
      return status!;
    },
    async batchGetStatus(userIds) {
      if (userIds.length === 0) return [];
      const pipeline = redis.pipeline();
      for (const id of userIds) pipeline.hmget(keys.presenceState(id), "status", "lastSeenMs");
      const results = (await pipeline.exec()) ?? [];
      return userIds.map((userId, i) => {
        const [error, value] = results[i] ?? [null, null];
        if (error) throw error;
        const [status, lastSeen] = (value as (string | null)[] | null) ?? [null, null];
        return { userId, status: status === "online" ? "online" : "offline", lastSeenMs: Number(lastSeen ?? 0) };
      });
    },
    async sweepDue(limit = 500) {
      const due = await redis.zrangebyscore(keys.presenceDue, "-inf", Date.now(), "LIMIT", 0, limit);
      let changed = 0;
      for (const userId of due) {
        changed += Number(await redis.eval(SWEEP, 4, ...keysOf(userId), userId, maxLen, String(graceMs)));
      }
      return changed;
    },
  };
}
