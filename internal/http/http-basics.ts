import type * as http from "node:http";
import type * as http2 from "node:http2";
import { cors as connectCors } from "@connectrpc/connect";
import { AppError, errorMappings } from "../errors/index.js";

export type Request = http.IncomingMessage | http2.Http2ServerRequest;
export type Response = http.ServerResponse | http2.Http2ServerResponse;

const SECURITY_HEADERS: Record<string, string> = {
  "x-content-type-options": "nosniff",
  "x-frame-options": "DENY",
  "referrer-policy": "no-referrer",
  "cross-origin-resource-policy": "same-site",
};

/**
 * Security headers on every response; CORS for allow-listed origins only. Answers preflight
 * requests itself and returns true when it did.
 */
export function applyCors(req: Request, res: Response, allowedOrigins: readonly string[]): boolean {
  for (const [name, value] of Object.entries(SECURITY_HEADERS)) res.setHeader(name, value);
  const origin = req.headers.origin;
  const allowed = typeof origin === "string" && allowedOrigins.includes(origin);
  if (allowed) {
    res.setHeader("access-control-allow-origin", origin);
    res.setHeader("vary", "Origin");
    res.setHeader("access-control-expose-headers", [...connectCors.exposedHeaders, "retry-after", "ratelimit", "x-chat-error"].join(", "));
  }
  if (req.method !== "OPTIONS") return false;
  if (allowed) {
    res.setHeader("access-control-allow-methods", [...new Set([...connectCors.allowedMethods, "GET", "POST", "PATCH", "DELETE"])].join(", "));
    res.setHeader("access-control-allow-headers", [...connectCors.allowedHeaders, "Authorization", "Idempotency-Key"].join(", "));
    res.setHeader("access-control-max-age", "600");
  }
  res.writeHead(allowed ? 204 : 403);
  res.end();
  return true;
}

/** Reads a JSON body of at most `maxBytes`; INVALID_ARGUMENT for bad JSON, RESOURCE_EXHAUSTED(413) when too large. */
export async function readJson(req: Request, maxBytes: number): Promise<unknown> {
  const declared = Number(req.headers["content-length"] ?? 0);
  if (declared > maxBytes) throw new PayloadTooLarge(maxBytes);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > maxBytes) throw new PayloadTooLarge(maxBytes);
    chunks.push(chunk);
  }
  if (size === 0) return {};
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(Buffer.concat(chunks));
  } catch {
    throw new AppError("invalid_argument", "request body is not valid UTF-8");
  }
  try {
    return JSON.parse(text);
  } catch {
    throw new AppError("invalid_argument", "request body is not valid JSON");
  }
}

export class PayloadTooLarge extends AppError {
  constructor(maxBytes: number) {
    super("invalid_argument", `request body is larger than ${maxBytes} bytes`);
  }
}

export function sendJson(res: Response, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json; charset=utf-8", "cache-control": "no-store", ...headers });
  res.end(text);
}

/** `{ error: { code, message } }` with the mapped status; never a stack. */
export function sendError(res: Response, error: unknown): void {
  const appError = AppError.from(error);
  const status = error instanceof PayloadTooLarge ? 413 : errorMappings[appError.code].http;
  const headers: Record<string, string> = {};
  if (appError.details.retryAfterMs !== undefined) headers["retry-after"] = String(Math.ceil(appError.details.retryAfterMs / 1000));
  const body: Record<string, unknown> = { code: appError.code, message: appError.message };
  if (appError.details.field) body.field = appError.details.field;
  sendJson(res, status, { error: body }, headers);
}
