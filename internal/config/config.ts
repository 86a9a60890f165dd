import { existsSync, readFileSync } from "node:fs";
import { hostname } from "node:os";
import { parseEnv } from "node:util";
import { z } from "zod";

const EXAMPLE_JWT_SECRET = "dev-only-secret-change-me-0123456789abcdef";

const bool = z
  .enum(["true", "false", "1", "0", ""])
  .transform((v) => v === "true" || v === "1");
const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);
const list = z.string().transform((v) => v.split(",").map((s) => s.trim()).filter(Boolean));

/**
 * Every setting of every process, read from the environment once at start. Each entry documents
 * its variable; `.env.example` lists them all with their defaults.
 */
const schema = z.object({
  /** NODE_ENV: development relaxes secret checks; production refuses example secrets. */
  NODE_ENV: z.enum(["development", "production", "test"]).default("development"),
  /** LOG_LEVEL: pino level. */
  LOG_LEVEL: z.enum(["trace", "debug", "info", "warn", "error", "fatal", "silent"]).default("info"),
  /** DATABASE_URL: PostgreSQL, the system of record. */
  DATABASE_URL: z.string().url().default("postgresql://chatuser:chatpass@localhost:5432/chatdb"),
  /** REDIS_URL: delivery streams, membership leases, presence, rate limits, BullMQ. */
  REDIS_URL: z.string().url().default("redis://localhost:6379"),
  /** KAFKA_BROKERS: comma-separated; empty turns the Kafka mirror off. */
  KAFKA_BROKERS: list.default(""),
  /** JWT_SECRET: HS256 key, at least 32 characters. */
  JWT_SECRET: z.string().min(32, "JWT_SECRET must be at least 32 characters").default(EXAMPLE_JWT_SECRET),
  /** CHAT_JWT_TTL_SECONDS: lifetime of issued tokens. */
  CHAT_JWT_TTL_SECONDS: int(60, 30 * 86400).default(12 * 3600),
  /** CHAT_ENCRYPTION_ENABLED: encrypt new message bodies at rest (AES-256-GCM). */
  CHAT_ENCRYPTION_ENABLED: bool.default("false"),
  /** CHAT_MESSAGE_KEY: "base64:<32 bytes>", key version 1 (seed compatible). */
  CHAT_MESSAGE_KEY: z.string().default(""),
  // --- security: keyring, rate limits (internal/crypto, internal/ratelimit) ---
  /** CHAT_MESSAGE_KEYS: keyring "<version>:base64:<32 bytes>,..." (versions 1-65535); merged with CHAT_MESSAGE_KEY as version 1. Old versions stay to read old rows. */
  CHAT_MESSAGE_KEYS: z.string().default(""),
  /** CHAT_MESSAGE_KEY_ACTIVE: key version new bodies are sealed with; 0 = the highest version in the keyring. */
  CHAT_MESSAGE_KEY_ACTIVE: int(0, 65535).default(0),
  /** CHAT_KAFKA_PLAINTEXT_BODIES: with encryption on, put plaintext bodies in Kafka events anyway (default: sealed). */
  CHAT_KAFKA_PLAINTEXT_BODIES: bool.default("false"),
  /** CHAT_KEY_ROTATION_BATCH: rows re-encrypted per transaction by the key-rotation job. */
  CHAT_KEY_ROTATION_BATCH: int(1, 10_000).default(500),
  /** CHAT_KEY_ROTATION_PAUSE_MS: pause between key-rotation batches (limits the load on PostgreSQL). */
  CHAT_KEY_ROTATION_PAUSE_MS: int(0, 60_000).default(10),
  /** CHAT_RATELIMIT_ENABLED: shared Redis rate limits (GCRA) on sends, auth, frames, heartbeats. */
  CHAT_RATELIMIT_ENABLED: bool.default("true"),
  /** CHAT_RATELIMIT_SEND_PER_SECOND: sustained messages per user per second (all nodes together). */
  CHAT_RATELIMIT_SEND_PER_SECOND: z.coerce.number().min(0.001).max(100_000).default(10),
  /** CHAT_RATELIMIT_SEND_BURST: messages a user may send at once before the rate applies. */
  CHAT_RATELIMIT_SEND_BURST: int(1, 1_000_000).default(300),
  /** CHAT_RATELIMIT_AUTH_PER_MINUTE: sustained login/register attempts per client IP per minute. */
  CHAT_RATELIMIT_AUTH_PER_MINUTE: z.coerce.number().min(0.001).max(1_000_000).default(60),
  /** CHAT_RATELIMIT_AUTH_BURST: login/register attempts per client IP at once. */
  CHAT_RATELIMIT_AUTH_BURST: int(1, 1_000_000).default(100),
  /** CHAT_RATELIMIT_LOGIN_PER_MINUTE: sustained login attempts per username per minute (slows guessing from many IPs). */
  CHAT_RATELIMIT_LOGIN_PER_MINUTE: z.coerce.number().min(0.001).max(1_000_000).default(10),
  /** CHAT_RATELIMIT_LOGIN_BURST: login attempts per username at once. */
  CHAT_RATELIMIT_LOGIN_BURST: int(1, 1_000_000).default(20),
  /** CHAT_RATELIMIT_FRAMES_PER_SECOND: sustained WebSocket frames per connection per second. */
  CHAT_RATELIMIT_FRAMES_PER_SECOND: z.coerce.number().min(0.001).max(1_000_000).default(20),
  /** CHAT_RATELIMIT_FRAMES_BURST: WebSocket frames per connection at once. */
  CHAT_RATELIMIT_FRAMES_BURST: int(1, 1_000_000).default(60),
  /** CHAT_RATELIMIT_HEARTBEATS_PER_MINUTE: sustained presence heartbeats per user per minute (all devices). */
  CHAT_RATELIMIT_HEARTBEATS_PER_MINUTE: z.coerce.number().min(0.001).max(1_000_000).default(60),
  /** CHAT_RATELIMIT_HEARTBEATS_BURST: presence heartbeats per user at once. */
  CHAT_RATELIMIT_HEARTBEATS_BURST: int(1, 1_000_000).default(20),
  /** CHAT_RATELIMIT_REDIS_TIMEOUT_MS: a limiter call slower than this counts as Redis being down. */
  CHAT_RATELIMIT_REDIS_TIMEOUT_MS: int(5, 10_000).default(250),
  /** CHAT_RATELIMIT_AUTH_FAIL_CLOSED: with Redis down, refuse login/register (UNAVAILABLE) instead of limiting per process. */
  CHAT_RATELIMIT_AUTH_FAIL_CLOSED: bool.default("true"),
  /** CHAT_TRUSTED_PROXIES: peer IPs whose X-Forwarded-For is believed (the web proxy); the client IP is the last untrusted hop. */
  CHAT_TRUSTED_PROXIES: list.default("127.0.0.1,::1,::ffff:127.0.0.1"),
  /** CHAT_REDIS_PREFIX: prefix of every Redis key (isolates deployments sharing a Redis). */
  CHAT_REDIS_PREFIX: z.string().regex(/^[a-zA-Z0-9_-]{1,32}$/).default("chat"),
  /** CHAT_BIND_HOST: interface every server listens on. */
  CHAT_BIND_HOST: z.string().default("127.0.0.1"),
  /** CHAT_NODE_ID: this chat-node's identity in the cluster; defaults to host:port. */
  CHAT_NODE_ID: z.string().max(128).default(""),
  /** CHAT_NODE_PORT: public API (Connect, gRPC, gRPC-Web, REST). */
  CHAT_NODE_PORT: int(0, 65535).default(3001),
  /** CHAT_NODE_GRPC_PORT: internal node-to-node gRPC. */
  CHAT_NODE_GRPC_PORT: int(0, 65535).default(7001),
  /** CHAT_NODE_GRPC_ADVERTISE: host:port other nodes dial for this node's internal gRPC; default bind host and bound port. */
  CHAT_NODE_GRPC_ADVERTISE: z.string().max(256).default(""),
  /** CHAT_NODE_API_ADVERTISE: this node's public API URL as shown to operators; default http://<bind host>:<bound port>. */
  CHAT_NODE_API_ADVERTISE: z.string().max(256).default(""),
  /** CHAT_CLUSTER_LEASE_TTL_MS: a node that misses heartbeats this long leaves the ring. */
  CHAT_CLUSTER_LEASE_TTL_MS: int(500, 600_000).default(3_000),
  /** CHAT_CLUSTER_HEARTBEAT_MS: lease renewal period (keep it well under the TTL). */
  CHAT_CLUSTER_HEARTBEAT_MS: int(100, 60_000).default(1_000),
  /** CHAT_CLUSTER_POLL_MS: member list reread period, besides change notifications. */
  CHAT_CLUSTER_POLL_MS: int(50, 60_000).default(500),
  /** CHAT_CLUSTER_FORWARD_DEADLINE_MS: deadline of one forwarded actor call. */
  CHAT_CLUSTER_FORWARD_DEADLINE_MS: int(100, 60_000).default(3_000),
  /** CHAT_CLUSTER_ROUTE_TIMEOUT_MS: total retry budget of one actor call across owner changes. */
  CHAT_CLUSTER_ROUTE_TIMEOUT_MS: int(500, 120_000).default(10_000),
  /** CHAT_SHUTDOWN_GRACE_MS: in-flight requests get this long to finish on SIGTERM. */
  CHAT_SHUTDOWN_GRACE_MS: int(0, 120_000).default(5_000),
  /** CHAT_GATEWAY_PORT: WebSocket gateway. */
  CHAT_GATEWAY_PORT: int(0, 65535).default(4000),
  /** CHAT_GATEWAY_API_URL: comma-separated chat-node URLs the gateway calls for `send`/`read` frames (picked round-robin, the next one on UNAVAILABLE). */
  CHAT_GATEWAY_API_URL: list.default("http://127.0.0.1:3001"),
  /** CHAT_PRESENCE_PORT: presence service. */
  CHAT_PRESENCE_PORT: int(0, 65535).default(4001),
  /** CHAT_WEB_PORT: web app. */
  CHAT_WEB_PORT: int(0, 65535).default(3000),
  /** CHAT_WEB_API_URL: chat-node the web server proxies `/chat.v1.*` and `/api/*` to. */
  CHAT_WEB_API_URL: z.string().url().default("http://127.0.0.1:3001"),
  /** CHAT_WEB_GATEWAY_URL: WebSocket gateway the web server proxies `/ws` upgrades to. */
  CHAT_WEB_GATEWAY_URL: z.string().url().default("http://127.0.0.1:4000"),
  /** CHAT_WEB_PRESENCE_URL: presence service the web server proxies `/presence/*` to (prefix stripped). */
  CHAT_WEB_PRESENCE_URL: z.string().url().default("http://127.0.0.1:4001"),
  /** CHAT_CORS_ORIGINS: comma-separated origins allowed to call the API and open WebSockets. */
  CHAT_CORS_ORIGINS: list.default("http://localhost:3000,http://127.0.0.1:3000"),
  /** CHAT_MAX_MESSAGE_BYTES: largest message body in UTF-8 bytes. */
  CHAT_MAX_MESSAGE_BYTES: int(1, 1 << 20).default(4096),
  /** CHAT_MAX_REQUEST_BYTES: largest HTTP/RPC request body. */
  CHAT_MAX_REQUEST_BYTES: int(1024, 16 << 20).default(64 * 1024),
  /** CHAT_HTTP_HEADERS_TIMEOUT_MS: a client must send its first bytes and its complete request headers within this (slow-header clients are cut off). */
  CHAT_HTTP_HEADERS_TIMEOUT_MS: int(200, 120_000).default(10_000),
  /** CHAT_ACTOR_MAILBOX_LIMIT: queued commands per conversation before RESOURCE_EXHAUSTED. */
  CHAT_ACTOR_MAILBOX_LIMIT: int(1, 100_000).default(2000),
  /** CHAT_ACTOR_MAX_BATCH: commands committed in one transaction at most. */
  CHAT_ACTOR_MAX_BATCH: int(1, 5000).default(256),
  /** CHAT_ACTOR_COMMIT_PARALLEL: group-commit transactions in flight per node (each takes many actors' batches). */
  CHAT_ACTOR_COMMIT_PARALLEL: int(1, 64).default(2),
  /** CHAT_ACTOR_IDLE_MS: an actor with no work for this long is passivated. */
  CHAT_ACTOR_IDLE_MS: int(100, 86_400_000).default(60_000),
  /** CHAT_ACTOR_MAX_LIVE: live actors per node; the least recently used idle one goes first. */
  CHAT_ACTOR_MAX_LIVE: int(1, 1_000_000).default(20_000),
  /** CHAT_DB_POOL_SIZE: PostgreSQL connections per process. */
  CHAT_DB_POOL_SIZE: int(1, 500).default(20),
  /** CHAT_DB_STATEMENT_TIMEOUT_MS: server-side statement timeout. */
  CHAT_DB_STATEMENT_TIMEOUT_MS: int(100, 600_000).default(5000),
  /** CHAT_DB_CONNECTION_TIMEOUT_MS: wait for a pool connection before failing. */
  CHAT_DB_CONNECTION_TIMEOUT_MS: int(100, 600_000).default(5000),
  // --- presence, inbox, Kafka mirror ---
  /** CHAT_PRESENCE_TTL_MS: a device entry lives this long after its last heartbeat (clients beat at about a third of it). */
  CHAT_PRESENCE_TTL_MS: int(200, 3_600_000).default(45_000),
  /** CHAT_PRESENCE_GRACE_MS: a user whose last device went away turns offline only after this (no flapping on reconnect). */
  CHAT_PRESENCE_GRACE_MS: int(0, 3_600_000).default(10_000),
  /** CHAT_PRESENCE_SWEEP_MS: how often the presence service looks for users whose grace period ended. */
  CHAT_PRESENCE_SWEEP_MS: int(20, 60_000).default(500),
  /** CHAT_INBOX_CONCURRENCY: inbox jobs one worker process runs at once. */
  CHAT_INBOX_CONCURRENCY: int(1, 256).default(8),
  /** CHAT_INBOX_ATTEMPTS: tries per inbox/notification job before it moves to the dead-letter queue. */
  CHAT_INBOX_ATTEMPTS: int(1, 100).default(8),
  /** CHAT_INBOX_BACKOFF_MS: first retry delay; doubles on every further attempt (exponential backoff). */
  CHAT_INBOX_BACKOFF_MS: int(10, 600_000).default(500),
  /** CHAT_INBOX_LOCK_MS: BullMQ job lock; jobs of a crashed worker run again roughly this long after the crash. */
  CHAT_INBOX_LOCK_MS: int(1000, 600_000).default(30_000),
  /** CHAT_INBOX_RECONCILE_MS: period of the worker's sweep that repairs stale or missing inbox rows; 0 turns it off. */
  CHAT_INBOX_RECONCILE_MS: int(0, 86_400_000).default(60_000),
  /** CHAT_NOTIFY_WEBHOOK_URL: offline-recipient notifications are POSTed here as JSON; empty = log sink only. */
  CHAT_NOTIFY_WEBHOOK_URL: z.string().url().or(z.literal("")).default(""),
  /** CHAT_NOTIFY_TIMEOUT_MS: timeout of one webhook call (a failure is retried with backoff). */
  CHAT_NOTIFY_TIMEOUT_MS: int(100, 120_000).default(5000),
  /** CHAT_INBOX_METRICS_PORT: inbox-worker `/metrics` and `/health`. */
  CHAT_INBOX_METRICS_PORT: int(0, 65535).default(9465),
  /** CHAT_MIRROR_METRICS_PORT: kafka-mirror `/metrics` (outbox lag) and `/health`. */
  CHAT_MIRROR_METRICS_PORT: int(0, 65535).default(9464),
  /** CHAT_MIRROR_BATCH: outbox rows claimed and produced per batch. */
  CHAT_MIRROR_BATCH: int(1, 10_000).default(500),
  /** CHAT_MIRROR_SHARDS: outbox key shards (each claimed by one mirror at a time); must be equal on every mirror. */
  CHAT_MIRROR_SHARDS: int(1, 1024).default(8),
  /** CHAT_MIRROR_POLL_MS: wait between outbox polls when nothing was pending. */
  CHAT_MIRROR_POLL_MS: int(10, 60_000).default(200),
  /** CHAT_KAFKA_TOPIC_PREFIX: prepended to every topic name (isolates tests and tenants on one cluster). */
  CHAT_KAFKA_TOPIC_PREFIX: z.string().regex(/^[a-zA-Z0-9._-]{0,64}$/).default(""),
  /** CHAT_KAFKA_PARTITIONS: partitions of topics the mirror creates. */
  CHAT_KAFKA_PARTITIONS: int(1, 1000).default(6),
});

type Raw = z.infer<typeof schema>;

export type Config = {
  nodeEnv: Raw["NODE_ENV"];
  logLevel: Raw["LOG_LEVEL"];
  databaseUrl: string;
  redisUrl: string;
  kafkaBrokers: string[];
  jwtSecret: string;
  jwtTtlSeconds: number;
  encryptionEnabled: boolean;
  messageKey: string;
  /** The keyring: version -> 32-byte AES key (CHAT_MESSAGE_KEY is version 1). Never log it. */
  messageKeys: ReadonlyMap<number, Buffer>;
  /** Version new bodies are sealed with; 0 when the keyring is empty. */
  messageKeyActive: number;
  kafkaPlaintextBodies: boolean;
  keyRotationBatch: number;
  keyRotationPauseMs: number;
  rateLimit: {
    enabled: boolean;
    send: { perSecond: number; burst: number };
    auth: { perSecond: number; burst: number };
    login: { perSecond: number; burst: number };
    frames: { perSecond: number; burst: number };
    heartbeats: { perSecond: number; burst: number };
    redisTimeoutMs: number;
    authFailClosed: boolean;
  };
  trustedProxies: string[];
  redisPrefix: string;
  bindHost: string;
  nodeId: string;
  nodePort: number;
  nodeGrpcPort: number;
  nodeGrpcAdvertise: string;
  nodeApiAdvertise: string;
  clusterLeaseTtlMs: number;
  clusterHeartbeatMs: number;
  clusterPollMs: number;
  clusterForwardDeadlineMs: number;
  clusterRouteTimeoutMs: number;
  shutdownGraceMs: number;
  gatewayPort: number;
  gatewayApiUrls: string[];
  presencePort: number;
  webPort: number;
  webApiUrl: string;
  webGatewayUrl: string;
  webPresenceUrl: string;
  corsOrigins: string[];
  maxMessageBytes: number;
  maxRequestBytes: number;
  httpHeadersTimeoutMs: number;
  actorMailboxLimit: number;
  actorMaxBatch: number;
  actorCommitParallel: number;
  actorIdleMs: number;
  actorMaxLive: number;
  dbPoolSize: number;
  dbStatementTimeoutMs: number;
  dbConnectionTimeoutMs: number;
  presenceTtlMs: number;
  presenceGraceMs: number;
  presenceSweepMs: number;
  inboxConcurrency: number;
  inboxAttempts: number;
  inboxBackoffMs: number;
  inboxLockMs: number;
  inboxReconcileMs: number;
  notifyWebhookUrl: string;
  notifyTimeoutMs: number;
  inboxMetricsPort: number;
  mirrorMetricsPort: number;
  mirrorBatch: number;
  mirrorShards: number;
  mirrorPollMs: number;
  kafkaTopicPrefix: string;
  kafkaPartitions: number;
  /** CHAT_* variables present in the environment that no setting reads (likely typos). */
  unknownVariables: string[];
};

export class ConfigError extends Error {
  override name = "ConfigError";
}

/**
 * Parses the environment once. Empty strings count as unset. Throws ConfigError naming every bad
 * variable at once.
 */
export function loadConfig(env: NodeJS.ProcessEnv = withDotEnv(process.env)): Config {
  const input: Record<string, string> = {};
  for (const key of Object.keys(schema.shape)) {
    const value = env[key];
    if (value !== undefined && value !== "") input[key] = value;
  }
  const parsed = schema.safeParse(input);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join(".")}: ${i.message}`);
    throw new ConfigError(`invalid configuration:\n${lines.join("\n")}`);
  }
  const r = parsed.data;
  const problems: string[] = [];
  if (r.NODE_ENV === "production" && r.JWT_SECRET === EXAMPLE_JWT_SECRET) {
    problems.push("  JWT_SECRET: the example secret is refused when NODE_ENV=production");
  }
  // A 32-character secret of one repeated character passes the length rule but is guessable.
  if (new Set(r.JWT_SECRET).size < 8) problems.push("  JWT_SECRET: too little variety (fewer than 8 distinct characters)");
  const keyring = parseKeyring(r.CHAT_MESSAGE_KEY, r.CHAT_MESSAGE_KEYS, r.CHAT_MESSAGE_KEY_ACTIVE, problems);
  if (r.CHAT_ENCRYPTION_ENABLED && keyring.keys.size === 0) {
    problems.push("  CHAT_MESSAGE_KEY: required (or CHAT_MESSAGE_KEYS) when CHAT_ENCRYPTION_ENABLED=true");
  }
  if (r.CHAT_CLUSTER_HEARTBEAT_MS * 2 > r.CHAT_CLUSTER_LEASE_TTL_MS) {
    problems.push("  CHAT_CLUSTER_HEARTBEAT_MS: must be at most half of CHAT_CLUSTER_LEASE_TTL_MS");
  }
  if (problems.length > 0) throw new ConfigError(`invalid configuration:\n${problems.join("\n")}`);
  const known = new Set(Object.keys(schema.shape));
  return {
    nodeEnv: r.NODE_ENV,
    logLevel: r.LOG_LEVEL,
    databaseUrl: r.DATABASE_URL,
    redisUrl: r.REDIS_URL,
    kafkaBrokers: r.KAFKA_BROKERS,
    jwtSecret: r.JWT_SECRET,
    jwtTtlSeconds: r.CHAT_JWT_TTL_SECONDS,
    encryptionEnabled: r.CHAT_ENCRYPTION_ENABLED,
    messageKey: r.CHAT_MESSAGE_KEY,
    messageKeys: keyring.keys,
    messageKeyActive: keyring.active,
    kafkaPlaintextBodies: r.CHAT_KAFKA_PLAINTEXT_BODIES,
    keyRotationBatch: r.CHAT_KEY_ROTATION_BATCH,
    keyRotationPauseMs: r.CHAT_KEY_ROTATION_PAUSE_MS,
    rateLimit: {
      enabled: r.CHAT_RATELIMIT_ENABLED,
      send: { perSecond: r.CHAT_RATELIMIT_SEND_PER_SECOND, burst: r.CHAT_RATELIMIT_SEND_BURST },
      auth: { perSecond: r.CHAT_RATELIMIT_AUTH_PER_MINUTE / 60, burst: r.CHAT_RATELIMIT_AUTH_BURST },
      login: { perSecond: r.CHAT_RATELIMIT_LOGIN_PER_MINUTE / 60, burst: r.CHAT_RATELIMIT_LOGIN_BURST },
      frames: { perSecond: r.CHAT_RATELIMIT_FRAMES_PER_SECOND, burst: r.CHAT_RATELIMIT_FRAMES_BURST },
      heartbeats: { perSecond: r.CHAT_RATELIMIT_HEARTBEATS_PER_MINUTE / 60, burst: r.CHAT_RATELIMIT_HEARTBEATS_BURST },
      redisTimeoutMs: r.CHAT_RATELIMIT_REDIS_TIMEOUT_MS,
      authFailClosed: r.CHAT_RATELIMIT_AUTH_FAIL_CLOSED,
    },
    trustedProxies: r.CHAT_TRUSTED_PROXIES,
    redisPrefix: r.CHAT_REDIS_PREFIX,
    bindHost: r.CHAT_BIND_HOST,
    nodeId: r.CHAT_NODE_ID || `${hostname()}:${r.CHAT_NODE_PORT}`,
    nodePort: r.CHAT_NODE_PORT,
    nodeGrpcPort: r.CHAT_NODE_GRPC_PORT,
    nodeGrpcAdvertise: r.CHAT_NODE_GRPC_ADVERTISE,
    nodeApiAdvertise: r.CHAT_NODE_API_ADVERTISE,
    clusterLeaseTtlMs: r.CHAT_CLUSTER_LEASE_TTL_MS,
    clusterHeartbeatMs: r.CHAT_CLUSTER_HEARTBEAT_MS,
    clusterPollMs: r.CHAT_CLUSTER_POLL_MS,
    clusterForwardDeadlineMs: r.CHAT_CLUSTER_FORWARD_DEADLINE_MS,
    clusterRouteTimeoutMs: r.CHAT_CLUSTER_ROUTE_TIMEOUT_MS,
    shutdownGraceMs: r.CHAT_SHUTDOWN_GRACE_MS,
    gatewayPort: r.CHAT_GATEWAY_PORT,
    gatewayApiUrls: r.CHAT_GATEWAY_API_URL,
    presencePort: r.CHAT_PRESENCE_PORT,
    webPort: r.CHAT_WEB_PORT,
    webApiUrl: r.CHAT_WEB_API_URL,
    webGatewayUrl: r.CHAT_WEB_GATEWAY_URL,
    webPresenceUrl: r.CHAT_WEB_PRESENCE_URL,
    corsOrigins: r.CHAT_CORS_ORIGINS,
    maxMessageBytes: r.CHAT_MAX_MESSAGE_BYTES,
    maxRequestBytes: r.CHAT_MAX_REQUEST_BYTES,
    httpHeadersTimeoutMs: r.CHAT_HTTP_HEADERS_TIMEOUT_MS,
    actorMailboxLimit: r.CHAT_ACTOR_MAILBOX_LIMIT,
    actorMaxBatch: r.CHAT_ACTOR_MAX_BATCH,
    actorCommitParallel: r.CHAT_ACTOR_COMMIT_PARALLEL,
    actorIdleMs: r.CHAT_ACTOR_IDLE_MS,
    actorMaxLive: r.CHAT_ACTOR_MAX_LIVE,
    dbPoolSize: r.CHAT_DB_POOL_SIZE,
    dbStatementTimeoutMs: r.CHAT_DB_STATEMENT_TIMEOUT_MS,
    dbConnectionTimeoutMs: r.CHAT_DB_CONNECTION_TIMEOUT_MS,
    presenceTtlMs: r.CHAT_PRESENCE_TTL_MS,
    presenceGraceMs: r.CHAT_PRESENCE_GRACE_MS,
    presenceSweepMs: r.CHAT_PRESENCE_SWEEP_MS,
    inboxConcurrency: r.CHAT_INBOX_CONCURRENCY,
    inboxAttempts: r.CHAT_INBOX_ATTEMPTS,
    inboxBackoffMs: r.CHAT_INBOX_BACKOFF_MS,
    inboxLockMs: r.CHAT_INBOX_LOCK_MS,
    inboxReconcileMs: r.CHAT_INBOX_RECONCILE_MS,
    notifyWebhookUrl: r.CHAT_NOTIFY_WEBHOOK_URL,
    notifyTimeoutMs: r.CHAT_NOTIFY_TIMEOUT_MS,
    inboxMetricsPort: r.CHAT_INBOX_METRICS_PORT,
    mirrorMetricsPort: r.CHAT_MIRROR_METRICS_PORT,
    mirrorBatch: r.CHAT_MIRROR_BATCH,
    mirrorShards: r.CHAT_MIRROR_SHARDS,
    mirrorPollMs: r.CHAT_MIRROR_POLL_MS,
    kafkaTopicPrefix: r.CHAT_KAFKA_TOPIC_PREFIX,
    kafkaPartitions: r.CHAT_KAFKA_PARTITIONS,
    unknownVariables: Object.keys(env).filter((k) => k.startsWith("CHAT_") && !known.has(k)),
  };
}

const KEY_TEXT = /^base64:([A-Za-z0-9+/]+={0,2})$/;

/**
 * The message keyring from CHAT_MESSAGE_KEY (version 1) and CHAT_MESSAGE_KEYS ("v:base64:...,...").
 * Each key must be canonical base64 of exactly 32 bytes. Problems are appended to `problems`;
 * messages name the variable and version, never key material.
 */
function parseKeyring(single: string, ring: string, activeVersion: number, problems: string[]) {
  const keys = new Map<number, Buffer>();
  const decode = (variable: string, version: number, text: string): void => {
    const match = KEY_TEXT.exec(text.trim());
    const key = match ? Buffer.from(match[1]!, "base64") : null;
    if (!match || key!.toString("base64") !== match[1]) {
      problems.push(`  ${variable}: key version ${version} must be "base64:" followed by canonical base64`);
    } else if (key!.length !== 32) {
      problems.push(`  ${variable}: key version ${version} is ${key!.length} bytes; AES-256 needs exactly 32`);
    } else if (keys.has(version) && !keys.get(version)!.equals(key!)) {
      problems.push(`  ${variable}: key version ${version} is defined twice with different keys`);
    } else {
      keys.set(version, key!);
    }
  };
  if (single !== "") decode("CHAT_MESSAGE_KEY", 1, single);
  for (const entry of ring.split(",").map((e) => e.trim()).filter(Boolean)) {
    const colon = entry.indexOf(":");
    const version = Number(entry.slice(0, colon));
    if (colon < 1 || !Number.isInteger(version) || version < 1 || version > 65535) {
      problems.push(`  CHAT_MESSAGE_KEYS: each entry must be "<version 1-65535>:base64:<key>"`);
      continue;
    }
    decode("CHAT_MESSAGE_KEYS", version, entry.slice(colon + 1));
  }
  let active = activeVersion;
  if (active === 0) active = keys.size === 0 ? 0 : Math.max(...keys.keys());
  else if (!keys.has(active)) problems.push(`  CHAT_MESSAGE_KEY_ACTIVE: version ${active} is not in the keyring`);
  return { keys: keys as ReadonlyMap<number, Buffer>, active };
}

/** The environment with `.env` (in the working directory, if present) under it: real variables win. */
function withDotEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  if (!existsSync(".env")) return env;
  return { ...(parseEnv(readFileSync(".env", "utf8")) as NodeJS.ProcessEnv), ...env };
}

/** The variables and their defaults, for `.env.example` checks and docs. */
export const configVariables: readonly string[] = Object.keys(schema.shape);
