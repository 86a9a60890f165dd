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
  /** CHAT_PRESENCE_PORT: presence service. */
  CHAT_PRESENCE_PORT: int(0, 65535).default(4001),
  /** CHAT_WEB_PORT: web app. */
  CHAT_WEB_PORT: int(0, 65535).default(3000),
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
  presencePort: number;
  webPort: number;
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
    presencePort: r.CHAT_PRESENCE_PORT,
    webPort: r.CHAT_WEB_PORT,
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
    unknownVariables: Object.keys(env).filter((k) => k.startsWith("CHAT_") && !known.has(k)),
  };
}

/** The variables and their defaults, for `.env.example` checks and docs. */
export const configVariables: readonly string[] = Object.keys(schema.shape);
