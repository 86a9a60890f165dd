import {
  createPool,
  sql,
  SchemaValidationError,
  type DatabasePool,
  type Interceptor,
  type QueryResultRow,
} from "slonik";
import { ConnectionError, StatementTimeoutError, BackendTerminatedError } from "@slonik/errors";
import { AppError } from "../errors/index.js";

export type DatabaseOptions = {
  url: string;
  poolSize: number;
  statementTimeoutMs: number;
  connectionTimeoutMs: number;
};

/** Makes `sql.type(schema)` validate every row at run time (slonik only types it otherwise). */
const zodRows: Interceptor = {
  name: "zod-rows",
  transformRowAsync: async (ctx, query, row) => {
    if (!ctx.resultParser) return row;
    const result = await ctx.resultParser.safeParseAsync(row);
    if (!result.success) throw new SchemaValidationError(query, row, result.error.issues);
    return result.data as QueryResultRow;
  },
};

/** Translates driver failures once, here, into the application's codes. */
const translateErrors: Interceptor = {
  name: "translate-errors",
  queryExecutionError: (_ctx, _query, error) => {
    if (error instanceof StatementTimeoutError) {
      throw new AppError("deadline_exceeded", "database statement timed out", { cause: error });
    }
    if (error instanceof ConnectionError || error instanceof BackendTerminatedError) {
      throw new AppError("unavailable", "database unavailable", { cause: error });
    }
    return null;
  },
};

export type Database = DatabasePool;

/** A bounded pool with statement and connection timeouts; rows checked against their zod types. */
export async function createDatabase(options: DatabaseOptions): Promise<Database> {
  return createPool(options.url, {
    interceptors: [zodRows, translateErrors],
    maximumPoolSize: options.poolSize,
    statementTimeout: options.statementTimeoutMs,
    connectionTimeout: options.connectionTimeoutMs,
    idleTimeout: 30_000,
    idleInTransactionSessionTimeout: 30_000,
    captureStackTrace: false,
    // Fenced commits must not be retried blindly: the actor decides what to do.
    transactionRetryLimit: 0,
    queryRetryLimit: 0,
  });
}

/** True when a trivial query answers (readiness probes). */
export async function pingDatabase(db: Database): Promise<boolean> {
  return db.exists(sql.unsafe`SELECT 1`).catch(() => false);
}
