import { Code } from "@connectrpc/connect";

/** The closed set of error codes every surface (Connect, gRPC, REST, WebSocket, jobs) speaks. */
export type ErrorCode =
  | "invalid_argument"
  | "unauthenticated"
  | "permission_denied"
  | "not_found"
  | "already_exists"
  | "failed_precondition"
  | "resource_exhausted"
  | "not_owner"
  | "unavailable"
  | "deadline_exceeded"
  | "internal";

type Mapping = { connect: Code; http: number; wsClose: number; retryable: boolean };

/**
 * One row per code. WebSocket close codes: 4000-4099 are terminal (do not reconnect with the same
 * credentials), 4100-4199 mean reconnect and resume from the last seq seen.
 */
export const errorMappings: Record<ErrorCode, Mapping> = {
  invalid_argument: { connect: Code.InvalidArgument, http: 400, wsClose: 4000, retryable: false },
  unauthenticated: { connect: Code.Unauthenticated, http: 401, wsClose: 4001, retryable: false },
  permission_denied: { connect: Code.PermissionDenied, http: 403, wsClose: 4003, retryable: false },
  not_found: { connect: Code.NotFound, http: 404, wsClose: 4004, retryable: false },
  already_exists: { connect: Code.AlreadyExists, http: 409, wsClose: 4009, retryable: false },
  failed_precondition: { connect: Code.FailedPrecondition, http: 412, wsClose: 4012, retryable: false },
  resource_exhausted: { connect: Code.ResourceExhausted, http: 429, wsClose: 4129, retryable: true },
  not_owner: { connect: Code.Unavailable, http: 503, wsClose: 4100, retryable: true },
  unavailable: { connect: Code.Unavailable, http: 503, wsClose: 4100, retryable: true },
  deadline_exceeded: { connect: Code.DeadlineExceeded, http: 504, wsClose: 4100, retryable: true },
  internal: { connect: Code.Internal, http: 500, wsClose: 4500, retryable: false },
};

export type ErrorDetails = {
  /** not_owner: the node id that owns the conversation now, when known. */
  ownerNodeId?: string;
  /** resource_exhausted: how long to wait before retrying. */
  retryAfterMs?: number;
  /** invalid_argument: the offending field. */
  field?: string;
};

/** The only error type the application throws on purpose. Its message is safe to show clients. */
export class AppError extends Error {
  readonly code: ErrorCode;
  readonly details: ErrorDetails;

  constructor(code: ErrorCode, message: string, options: { cause?: unknown; details?: ErrorDetails } = {}) {
    super(message, { cause: options.cause });
    this.name = "AppError";
    this.code = code;
    this.details = options.details ?? {};
  }

  get retryable(): boolean {
    return errorMappings[this.code].retryable;
  }

  /** Wraps anything thrown into an AppError; unknown errors become `internal` with a generic message. */
  static from(error: unknown): AppError {
    if (error instanceof AppError) return error;
    return new AppError("internal", "internal error", { cause: error });
  }
}

export const invalidArgument = (field: string, message: string): AppError =>
  new AppError("invalid_argument", message, { details: { field } });

/** What a non-member and a missing conversation both see. */
export const conversationNotFound = (): AppError => new AppError("not_found", "conversation not found");
