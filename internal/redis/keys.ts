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
    /** Pub/sub channel announcing membership changes. */
    membershipChannel: `${prefix}:cluster:changed`,
    // --- presence (internal/presence) ---
    /** Sorted set deviceId -> expiry (epoch ms): a user's live devices/connections. */
    presenceDevices: (userId: string) => `${prefix}:presence:devices:${userId}`,
    /** Hash {status, lastSeenMs, changedAtMs, offlineAtMs}: a user's published presence. */
    presenceState: (userId: string) => `${prefix}:presence:state:${userId}`,
    /** Sorted set userId -> epoch ms when the user turns offline unless a device beats first. */
    presenceDue: `${prefix}:presence:due`,
    /** Stream, capped: presence transitions written atomically by the Lua scripts; read by the presence service. */
    presenceChanges: `${prefix}:presence:changes`,
    /** Pub/sub channel: coalesced presence changes with their audience, for gateways (format in internal/presence). */
    presenceChannel: `${prefix}:presence:events`,
    // --- inbox (internal/inbox) ---
    /** BullMQ key prefix of the inbox queues (queue names below). */
    bullPrefix: `${prefix}:bull`,
    /** BullMQ queue: one job per committed event, jobId `<conversationId>_<seq>`. */
    inboxQueue: "inbox",
    /** BullMQ queue: offline notifications, jobId `<conversationId>_<seq>_<userId>`. */
    notifyQueue: "notify",
    /** BullMQ queue: dead letters (jobs that failed every attempt), for operators. */
    deadQueue: "dead",
    // --- delivery (internal/delivery) ---
    /** Stream, capped (MAXLEN ~): a conversation's recent events, entry id `<seq>-0`. */
    deliveryTail: (conversationId: string) => `${prefix}:delivery:tail:${conversationId}`,
    /** Sorted set hubId -> expiry (epoch ms): delivery hubs (gateways) with subscribers of the conversation. */
    deliveryInterest: (conversationId: string) => `${prefix}:delivery:interest:${conversationId}`,
    /** Stream, capped: events for one hub (a gateway or a chat-node's Subscribe), read with a consumer group. */
    deliveryInbox: (hubId: string) => `${prefix}:delivery:inbox:${hubId}`,
    /** Prefix of every deliveryInbox key (the fan-out script builds inbox keys from hub ids). */
    deliveryInboxPrefix: `${prefix}:delivery:inbox:`,
    // --- rate limits (internal/ratelimit) ---
    /** String, PX TTL: GCRA theoretical arrival time (epoch ms) of one budget ("send", "auth", ...) for one subject (user, IP, connection). */
    rateLimit: (budget: string, subject: string) => `${prefix}:ratelimit:${budget}:${subject}`,
    // --- key rotation (internal/crypto) ---
    /** BullMQ queue (under bullPrefix): key-rotation jobs, jobId `rotate-v<version>`; processed by the inbox-worker. */
    keyRotationQueue: "key-rotation",
    /** Hash: rotation checkpoint {targetVersion, afterConversationId, afterSeq, rewritten, failed, pass, state, ...}. */
    keyRotationCheckpoint: `${prefix}:crypto:rotation`,
  };
}

export type RedisKeys = ReturnType<typeof redisKeys>;
