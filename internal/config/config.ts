import { hostname } from "node:os";
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
  /** CHAT_ACTOR_MAILBOX_LIMIT: queued commands per conversation before RESOURCE_EXHAUSTED. */
  CHAT_ACTOR_MAILBOX_LIMIT: int(1, 100_000).default(2000),
  /** CHAT_ACTOR_MAX_BATCH: commands committed in one transaction at most. */
  CHAT_ACTOR_MAX_BATCH: int(1, 5000).default(256),
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
  redisPrefix: string;
  bindHost: string;
  nodeId: string;
  nodePort: number;
  nodeGrpcPort: number;
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
  actorMailboxLimit: number;
  actorMaxBatch: number;
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
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
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
  if (r.CHAT_ENCRYPTION_ENABLED && r.CHAT_MESSAGE_KEY === "") {
    problems.push("  CHAT_MESSAGE_KEY: required when CHAT_ENCRYPTION_ENABLED=true");
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
    redisPrefix: r.CHAT_REDIS_PREFIX,
    bindHost: r.CHAT_BIND_HOST,
    nodeId: r.CHAT_NODE_ID || `${hostname()}:${r.CHAT_NODE_PORT}`,
    nodePort: r.CHAT_NODE_PORT,
    nodeGrpcPort: r.CHAT_NODE_GRPC_PORT,
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
    actorMailboxLimit: r.CHAT_ACTOR_MAILBOX_LIMIT,
    actorMaxBatch: r.CHAT_ACTOR_MAX_BATCH,
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

/** The variables and their defaults, for `.env.example` checks and docs. */
export const configVariables: readonly string[] = Object.keys(schema.shape);
