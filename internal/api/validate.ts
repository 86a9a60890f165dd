import { invalidArgument } from "../errors/index.js";

/** Field checks shared by every transport (Connect, gRPC, REST, WebSocket). Each throws INVALID_ARGUMENT. */

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const USERNAME = /^[a-z0-9_.-]{3,32}$/;
const encoder = new TextEncoder();

export function uuid(field: string, value: string): string {
  if (!UUID.test(value)) throw invalidArgument(field, `${field} must be a UUID`);
  return value.toLowerCase();
}

export function uuids(field: string, values: string[], max: number): string[] {
  if (values.length > max) throw invalidArgument(field, `${field} has more than ${max} entries`);
  return values.map((v) => uuid(field, v));
}

export function username(field: string, value: string): string {
  const normalized = value.trim().toLowerCase();
  if (!USERNAME.test(normalized)) {
    throw invalidArgument(field, `${field} must be 3-32 characters of a-z, 0-9, '_', '.', '-'`);
  }
  return normalized;
}

export function usernames(field: string, values: string[], max: number): string[] {
  if (values.length > max) throw invalidArgument(field, `${field} has more than ${max} entries`);
  return values.map((v) => username(field, v));
}

/** Text with a length bound in characters; control characters other than newline and tab refused. */
export function text(field: string, value: string, options: { min: number; max: number }): string {
  const length = [...value].length;
  if (length < options.min || length > options.max) {
    throw invalidArgument(field, `${field} must be ${options.min}-${options.max} characters`);
  }
  if (/[\u0000-\u0008\u000b-\u001f\u007f]/.test(value)) throw invalidArgument(field, `${field} contains control characters`);
  if (!value.isWellFormed()) throw invalidArgument(field, `${field} is not valid UTF-8`);
  return value;
}

/** A message body: non-blank, at most `maxBytes` of UTF-8. */
export function body(field: string, value: string, maxBytes: number): string {
  if (value.trim().length === 0) throw invalidArgument(field, `${field} must not be empty`);
  if (encoder.encode(value).length > maxBytes) throw invalidArgument(field, `${field} is larger than ${maxBytes} bytes`);
  if (!value.isWellFormed()) throw invalidArgument(field, `${field} is not valid UTF-8`);
  if (/[\u0000]/.test(value)) throw invalidArgument(field, `${field} contains NUL`);
  return value;
}

export function idempotencyKey(field: string, value: string): string | null {
  if (value === "") return null;
  if (value.length > 128 || !/^[\x21-\x7e]+$/.test(value)) {
    throw invalidArgument(field, `${field} must be 1-128 printable ASCII characters`);
  }
  return value;
}

export function limit(field: string, value: number, fallback: number, max: number): number {
  if (value === 0) return fallback;
  if (!Number.isInteger(value) || value < 1 || value > max) throw invalidArgument(field, `${field} must be 1-${max}`);
  return value;
}

export function seq(field: string, value: bigint): bigint {
  if (value < 0n) throw invalidArgument(field, `${field} must not be negative`);
  return value;
}
