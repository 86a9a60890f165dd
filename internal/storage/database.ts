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

/** The pool methods that hold a connection while they run. */
const HOLDING = new Set(["any", "anyFirst", "exists", "many", "manyFirst", "maybeOne", "maybeOneFirst", "one", "oneFirst", "query", "transaction", "connect"]);

/**
 * A bounded pool with statement and connection timeouts; rows checked against their zod types.
 * Waiting for a free connection is bounded too (slonik's pool queues without limit): at most
 * `poolSize` calls hold a connection; a call that cannot get one within `connectionTimeoutMs`
 * fails with UNAVAILABLE instead of queueing behind a stuck database.
 */
export async function createDatabase(options: DatabaseOptions): Promise<Database> {
  const pool = await createPool(options.url, {
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
  const slots = createSlots(options.poolSize, options.connectionTimeoutMs);
  return new Proxy(pool, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver) as unknown;
      if (typeof property !== "string" || !HOLDING.has(property) || typeof value !== "function") return value;
      return async (...args: unknown[]) => {
        const release = await slots.acquire();
        try {
          return await (value as (...a: unknown[]) => Promise<unknown>).apply(target, args);
        } finally {
          release();
        }
      };
    },
  });
}

/** A counting semaphore whose waiters give up after `waitMs` with UNAVAILABLE. */
function createSlots(size: number, waitMs: number) {
  let free = size;
  const waiters: (() => void)[] = [];
  const release = () => {
    const next = waiters.shift();
    if (next) next();
    else free++;
  };
  return {
    acquire(): Promise<() => void> {
      if (free > 0) {
        free--;
        return Promise.resolve(release);
      }
      return new Promise((resolve, reject) => {
        const grant = () => {
          clearTimeout(timer);
          resolve(release);
        };
        const timer = setTimeout(() => {
          const i = waiters.indexOf(grant);
          if (i >= 0) waiters.splice(i, 1);
          reject(new AppError("unavailable", "database busy: no connection free in time", { details: { retryAfterMs: 1_000 } }));
        }, waitMs);
        waiters.push(grant);
      });
    },
  };
}

/** True when a trivial query answers (readiness probes). */
export async function pingDatabase(db: Database): Promise<boolean> {
  return db.exists(sql.unsafe`SELECT 1`).catch(() => false);
}
