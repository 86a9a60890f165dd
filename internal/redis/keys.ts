/**
 * Every Redis key, stream and queue name the system uses, built here and nowhere else. `prefix`
 * isolates deployments and tests sharing one Redis (default "chat").
 */
export function redisKeys(prefix = "chat") {
  return {
    prefix,
    // --- cluster membership (internal/cluster) ---
    /** Hash nodeId -> JSON member info; entries expire via their lease keys. */
    members: `${prefix}:cluster:members`,
    /** String with TTL: a node's lease. */
    lease: (nodeId: string) => `${prefix}:cluster:lease:${nodeId}`,
    /** Counter bumped on every membership change. */
    membershipVersion: `${prefix}:cluster:version`,
    /** Pub/sub channel announcing membership changes. */
    membershipChannel: `${prefix}:cluster:changed`,
  };
}

export type RedisKeys = ReturnType<typeof redisKeys>;
