import { createHash } from "node:crypto";
import { createRedis, type Redis, type RedisKeys } from "../redis/index.js";
import type { Logger } from "../telemetry/index.js";
import { GCRA_LUA, gcraStep, intervalMs, type Budget, type Decision } from "./gcra.js";

/** What a limiter does for a budget when Redis does not answer in time. */
export type RedisDownPolicy = "local" | "closed";

export type RateLimiter = {
  /** Takes `cost` (default 1) from `budget` for `subject`. Never throws: Redis failures follow the policy. */
  check(budget: Budget, subject: string, cost?: number): Promise<Decision>;
  close(): Promise<void>;
};

/** In-process GCRA (the same arithmetic as the Lua script); bounded memory: full buckets are swept. */
export function createLocalRateLimiter(options: { maxSubjects?: number; now?: () => number } = {}): RateLimiter {
  const tats = new Map<string, number>();
  const maxSubjects = options.maxSubjects ?? 100_000;
  const now = options.now ?? Date.now;
  return {
    async check(budget, subject, cost = 1) {
      const key = `${budget.name}\u0000${subject}`;
      const t = now();
      if (tats.size >= maxSubjects) {
        for (const [k, tat] of tats) if (tat <= t) tats.delete(k);
        // Still full of live buckets: drop the oldest entries (Map keeps insertion order).
        for (const k of tats.keys()) { if (tats.size < maxSubjects) break; tats.delete(k); }
      }
      const { decision, tat } = gcraStep(tats.get(key), t, budget, cost);
      if (tat !== undefined) { tats.delete(key); tats.set(key, tat); }
      return { ...decision, source: "local" };
    },
    async close() { tats.clear(); },
  };
}

/** Subjects go into Redis keys: long or odd ones are hashed so a client cannot make huge keys. */
function subjectKey(subject: string): string {
  return /^[A-Za-z0-9_.:@-]{1,64}$/.test(subject) ? subject : `h-${createHash("sha256").update(subject).digest("base64url").slice(0, 32)}`;
}

export type RedisRateLimiterOptions = {
  redisUrl: string;
  keys: RedisKeys;
  /** A call slower than this counts as Redis down (CHAT_RATELIMIT_REDIS_TIMEOUT_MS). */
  timeoutMs: number;
  /** Per budget name; default "local". */
  redisDown?: Record<string, RedisDownPolicy>;
  logger: Logger;
};

/**
 * The shared limiter: every process runs the GCRA script on the same Redis keys, so a budget is
 * global across nodes. Its own connection has no offline queue and no retries: while Redis is down
 * a call fails at once (or after `timeoutMs`) and the budget's policy decides: "local" falls back
 * to an in-process limiter with the same budget (each process then allows at most the budget on
 * its own), "closed" refuses (source "closed").
 */
export function createRedisRateLimiter(options: RedisRateLimiterOptions): RateLimiter {
  const redis: Redis = createRedis(options.redisUrl, {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    connectTimeout: Math.max(options.timeoutMs, 1000),
    retryStrategy: (attempt) => Math.min(100 * 2 ** attempt, 2_000),
  });
  redis.on("error", () => {}); // reported through check() failures; ioredis reconnects by itself
  redis.defineCommand("chatGcra", { numberOfKeys: 1, lua: GCRA_LUA });
  const local = createLocalRateLimiter();
  let lastWarnMs = 0;
  const warn = (error: unknown) => {
    if (Date.now() - lastWarnMs < 10_000) return;
    lastWarnMs = Date.now();
    options.logger.warn({ err: error }, "rate limiter: redis unavailable, applying the redis-down policy");
  };
  // Until the first connection (or until one wait for it timed out), calls wait for it instead of
  // failing at once: a process that just started should use the shared budget, not the fallback.
  let waitForReady = true;
  redis.once("ready", () => { waitForReady = false; });
  const ready = (): Promise<void> => {
    if (redis.status === "ready" || !waitForReady) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        waitForReady = false;
        redis.off("ready", onReady);
        reject(new Error("rate limiter: redis not connected"));
      }, options.timeoutMs);
      const onReady = () => { clearTimeout(timer); resolve(); };
      redis.once("ready", onReady);
    });
  };
  return {
    async check(budget, subject, cost = 1) {
      let timer: NodeJS.Timeout | undefined;
      try {
        await ready();
        const call = (redis as unknown as { chatGcra(key: string, t: string, burst: number, cost: number): Promise<number[]> })
          .chatGcra(options.keys.rateLimit(budget.name, subjectKey(subject)), String(intervalMs(budget)), budget.burst, cost);
        const timeout = new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`rate limiter call exceeded ${options.timeoutMs} ms`)), options.timeoutMs);
        });
        const [allowed, remaining, retryAfterMs, resetAfterMs] = await Promise.race([call, timeout]);
        call.catch(() => {});
        return { allowed: allowed === 1, remaining: remaining!, retryAfterMs: retryAfterMs!, resetAfterMs: resetAfterMs!, source: "redis" };
      } catch (error) {
        warn(error);
        if ((options.redisDown?.[budget.name] ?? "local") === "closed") {
          return { allowed: false, remaining: 0, retryAfterMs: 1000, resetAfterMs: 1000, source: "closed" };
        }
        return local.check(budget, subject, cost);
      } finally {
        clearTimeout(timer);
      }
    },
    async close() {
      redis.disconnect();
      await local.close();
    },
  };
}
