import type { Config } from "../config/index.js";
import { createDatabase, migrate, type Database } from "../storage/index.js";
import type { Logger } from "../telemetry/index.js";

/**
 * The process's PostgreSQL pool from config (statement and connection timeouts), migrated (every
 * process may start first; migrations run once under an advisory lock).
 * `poolSize` defaults to CHAT_DB_POOL_SIZE; background processes pass a smaller cap.
 */
export async function openDatabase(config: Config, logger: Logger, poolSize = config.dbPoolSize): Promise<Database> {
  const db = await createDatabase({
    url: config.databaseUrl,
    poolSize,
    statementTimeoutMs: config.dbStatementTimeoutMs,
    connectionTimeoutMs: config.dbConnectionTimeoutMs,
  });
  const applied = await migrate(db);
  if (applied.length > 0) logger.info({ applied }, "migrations applied");
  return db;
}
