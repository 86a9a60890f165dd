import { randomBytes } from "node:crypto";
import { Redis } from "ioredis";
import pg from "pg";
import { loadConfig, type Config } from "../../internal/config/index.js";
import { createDatabase, migrate, type Database } from "../../internal/storage/index.js";

/**
 * Test isolation: every test file gets its own PostgreSQL database (created from DATABASE_URL,
 * migrated) and its own Redis key prefix, so files can run in parallel against one server each.
 */
export type TestEnv = {
  config: Config;
  databaseUrl: string;
  redisPrefix: string;
  db: Database;
  close(): Promise<void>;
};

export async function createTestEnv(overrides: Record<string, string> = {}): Promise<TestEnv> {
  const base = loadConfig({ ...process.env, LOG_LEVEL: "silent" });
  const name = `test_${Date.now()}_${randomBytes(4).toString("hex")}`;
  const admin = new pg.Client({ connectionString: base.databaseUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(base.databaseUrl);
  url.pathname = `/${name}`;
  const databaseUrl = url.toString();
  const redisPrefix = `t${randomBytes(4).toString("hex")}`;
  const config = loadConfig({
    ...process.env,
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? "silent",
    DATABASE_URL: databaseUrl,
    CHAT_REDIS_PREFIX: redisPrefix,
    CHAT_NODE_PORT: "0",
    CHAT_NODE_GRPC_PORT: "0",
    CHAT_GATEWAY_PORT: "0",
    CHAT_PRESENCE_PORT: "0",
    CHAT_DB_POOL_SIZE: "10",
    ...overrides,
  });
  const db = await createDatabase({ url: databaseUrl, poolSize: 5, statementTimeoutMs: 10_000, connectionTimeoutMs: 5_000 });
  await migrate(db);
  return {
    config,
    databaseUrl,
    redisPrefix,
    db,
    async close() {
      await db.end();
      const drop = new pg.Client({ connectionString: base.databaseUrl });
      await drop.connect();
      await drop.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await drop.end();
    },
  };
}

/** Polls `check` until it returns a truthy value or the deadline passes (then throws its last error). */
export async function eventually<T>(check: () => Promise<T> | T, options: { timeoutMs?: number; intervalMs?: number } = {}): Promise<T> {
  const deadline = Date.now() + (options.timeoutMs ?? 10_000);
  let lastError: unknown = new Error("condition never became true");
  for (;;) {
    try {
      const value = await check();
      if (value) return value;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() > deadline) throw lastError;
    await new Promise((r) => setTimeout(r, options.intervalMs ?? 50));
  }
}

/** Deletes every Redis key under the test's prefix (SCAN + DEL); returns how many were deleted. */
export async function clearRedisPrefix(env: TestEnv): Promise<number> {
  const redis = new Redis(env.config.redisUrl);
  let cursor = "0", deleted = 0;
  try {
    do {
      const [next, keys] = await redis.scan(cursor, "MATCH", `${env.redisPrefix}:*`, "COUNT", 1000);
      if (keys.length) deleted += await redis.del(...keys);
      cursor = next;
    } while (cursor !== "0");
  } finally {
    redis.disconnect();
  }
  return deleted;
}
