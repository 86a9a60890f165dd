import { Redis, type RedisOptions } from "ioredis";

export type { Redis };

/**
 * A Redis connection with bounded retries per command (callers see errors instead of hanging) and
 * reconnects with capped backoff. Commands issued in the same tick go out in one write
 * (auto-pipelining), except on connections for BullMQ and blocking reads, which pass
 * `{ maxRetriesPerRequest: null }`.
 */
export function createRedis(url: string, options: RedisOptions = {}): Redis {
  return new Redis(url, {
    enableAutoPipelining: options.maxRetriesPerRequest !== null,
    maxRetriesPerRequest: 2,
    connectTimeout: 5_000,
    enableOfflineQueue: true,
    retryStrategy: (attempt) => Math.min(50 * 2 ** attempt, 2_000),
    lazyConnect: false,
    ...options,
  });
}
