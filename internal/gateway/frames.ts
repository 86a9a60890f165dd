import { toJson } from "@bufbuild/protobuf";
import { MessageSchema } from "../gen/chat/v1/common_pb.js";
import { PresenceStatus } from "../gen/chat/v1/events_pb.js";
import type { HubEvent } from "../delivery/index.js";
import { AppError, invalidArgument } from "../errors/index.js";

/** Client frames (docs/websocket.md). `ref` is echoed in the answer. */
export type ClientFrame =
  | { type: "join"; conversationId: string; lastSeq: bigint | null; ref?: string }
  | { type: "leave"; conversationId: string; ref?: string }
  | { type: "typing"; conversationId: string; typing: boolean; ref?: string }
  | { type: "send"; conversationId: string; body: string; idempotencyKey: string; ref?: string }
  | { type: "read"; conversationId: string; seq: bigint; ref?: string };

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const SEQ = /^\d{1,19}$/;

const str = (o: Record<string, unknown>, field: string, max: number): string => {
  const v = o[field];
  if (typeof v !== "string" || v.length > max) throw invalidArgument(field, `${field} must be a string of at most ${max} characters`);
  return v;
};
const conversation = (o: Record<string, unknown>): string => {
  const v = str(o, "conversationId", 36);
  if (!UUID.test(v)) throw invalidArgument("conversationId", "conversationId must be a UUID");
  return v.toLowerCase();
};
const seq = (o: Record<string, unknown>, field: string, optional: boolean): bigint | null => {
  const v = o[field];
  if (v === undefined || v === null) {
    if (optional) return null;
    throw invalidArgument(field, `${field} is required`);
  }
  const text = typeof v === "number" && Number.isSafeInteger(v) ? String(v) : v;
  if (typeof text !== "string" || !SEQ.test(text)) throw invalidArgument(field, `${field} must be a non-negative integer (string or number)`);
  const n = BigInt(text);
  if (n > 0x7fffffffffffffffn) throw invalidArgument(field, `${field} is out of range`);
  return n;
};

/** The `ref` of a frame, if it has a usable one (so even refused frames can be answered by ref). */
export function frameRef(raw: unknown): string | undefined {
  if (typeof raw !== "object" || raw === null) return undefined;
  const ref = (raw as Record<string, unknown>).ref;
  return typeof ref === "string" && ref.length <= 64 ? ref : undefined;
}

/** Parses and validates one text frame; throws INVALID_ARGUMENT. */
export function parseClientFrame(text: string): ClientFrame {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new AppError("invalid_argument", "frame is not valid JSON");
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) throw new AppError("invalid_argument", "frame must be a JSON object");
  const o = raw as Record<string, unknown>;
  const ref = frameRef(o);
  if (o.ref !== undefined && ref === undefined) throw invalidArgument("ref", "ref must be a string of at most 64 characters");
  switch (o.type) {
    case "join":
      return { type: "join", conversationId: conversation(o), lastSeq: seq(o, "lastSeq", true), ref };
    case "leave":
      return { type: "leave", conversationId: conversation(o), ref };
    case "typing":
      if (o.typing !== undefined && typeof o.typing !== "boolean") throw invalidArgument("typing", "typing must be a boolean");
      return { type: "typing", conversationId: conversation(o), typing: o.typing !== false, ref };
    case "send":
      return {
        type: "send",
        conversationId: conversation(o),
        body: str(o, "body", 1 << 20),
        idempotencyKey: o.idempotencyKey === undefined ? "" : str(o, "idempotencyKey", 128),
        ref,
      };
    case "read":
      return { type: "read", conversationId: conversation(o), seq: seq(o, "seq", false)!, ref };
    default:
      throw invalidArgument("type", "unknown frame type");
  }
}

const statusName = (s: PresenceStatus) => (s === PresenceStatus.ONLINE ? "online" : "offline");

/** The JSON text frame of an event, built once per event and shared by every socket. */
export function jsonFrame(e: HubEvent): string {
  if (e.jsonFrame !== undefined) return e.jsonFrame;
  const p = e.event.payload;
  let frame: Record<string, unknown>;
  switch (p.case) {
    case "messageCreated":
      frame = { type: "message:new", conversationId: e.conversationId, seq: String(e.seq), message: p.value.message ? toJson(MessageSchema, p.value.message) : null };
      break;
    case "typing":
      frame = { type: "typing", conversationId: p.value.conversationId, userId: p.value.userId, typing: p.value.typing };
      break;
    case "readReceipt":
      frame = { type: "read:receipt", conversationId: p.value.conversationId, userId: p.value.userId, lastReadSeq: String(p.value.lastReadSeq) };
      break;
    case "presenceChanged":
      frame = { type: "presence", userId: p.value.userId, status: statusName(p.value.status), lastSeenMs: String(p.value.lastSeenMs) };
      break;
    case "conversationUpdated":
      frame = { type: "conversation:updated", conversationId: e.conversationId, seq: String(p.value.seq) };
      break;
    default:
      frame = { type: "unknown" };
  }
  e.jsonFrame = JSON.stringify(frame);
  return e.jsonFrame;
}
