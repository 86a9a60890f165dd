import { toJson } from "@bufbuild/protobuf";
import { WebSocket } from "ws";
import { MessageSchema } from "../gen/chat/v1/common_pb.js";
import type { Principal } from "../auth/index.js";
import { ephemeralEvent, type DeliveryHub, type HubEvent, type Subscription } from "../delivery/index.js";
import { AppError, errorMappings } from "../errors/index.js";
import type { Logger } from "../telemetry/index.js";
import type { ChatApiClient } from "./chat-api-client.js";
import { createFrameLimiter } from "./frame-limiter.js";
import { frameRef, jsonFrame, parseClientFrame, type ClientFrame } from "./frames.js";
import type { GatewayMetrics } from "./gateway-metrics.js";
import type { TypingThrottle } from "./typing-throttle.js";

/** Documented close codes (docs/websocket.md). */
export const CloseCode = {
  badProtocol: 4000,
  tokenExpired: 4001,
  rateAbuse: 4008,
  draining: 4100,
  overflow: 4101,
} as const;

export type ConnectionLimits = {
  /** Over this many bytes queued on the socket, messages close it (4101) and ephemerals are dropped at half. */
  maxBufferedBytes: number;
  /** Frame rate per connection: sustained per second and burst. */
  framesPerSecond: number;
  frameBurst: number;
  /** Refused frames (rate) before the connection is closed with 4008. */
  maxRefusedFrames: number;
  /** Conversations one connection may join. */
  maxJoined: number;
  /** send/read calls in flight per connection. */
  maxInFlight: number;
  /** After a close frame, a socket that does not finish closing is destroyed. */
  closeTimeoutMs: number;
};

export type ConnectionDeps = {
  hub: DeliveryHub;
  api: ChatApiClient;
  typing: TypingThrottle;
  metrics: GatewayMetrics;
  logger: Logger;
  limits: ConnectionLimits;
};

/**
 * One WebSocket client: its joined conversations (each a hub subscription), frame handling and
 * the bounded send path. Messages are never dropped: over the bound the socket is closed with
 * 4101 and the client resumes with its last seqs. Ephemeral events are dropped first.
 */
export class Connection {
  private readonly subs = new Map<string, Subscription>();
  private readonly joining = new Set<string>();
  private readonly limiter;
  private refused = 0;
  private inFlight = 0;
  private closing = false;
  alive = true;
  private readonly expiryTimer: NodeJS.Timeout;

  constructor(
    private readonly ws: WebSocket,
    private readonly principal: Principal,
    private readonly token: string,
    private readonly binary: boolean,
    private readonly deps: ConnectionDeps,
  ) {
    this.limiter = createFrameLimiter(deps.limits.framesPerSecond, deps.limits.frameBurst);
    // setTimeout holds at most ~24.8 days; longer tokens are re-checked then.
    const untilExpiry = Math.min(Math.max(0, principal.expiresAtMs - Date.now()), 2 ** 31 - 1);
    this.expiryTimer = setTimeout(() => this.close(CloseCode.tokenExpired, "token expired"), untilExpiry);
    ws.on("message", (data, isBinary) => this.onFrame(data as Buffer, isBinary));
    ws.on("pong", () => { this.alive = true; });
    ws.on("close", () => this.cleanup());
    ws.on("error", (err) => deps.logger.debug({ err }, "socket error"));
  }

  get joinedCount(): number {
    return this.subs.size;
  }

  /** Sends a close frame (once) and destroys the socket if the peer does not complete the close. */
  close(code: number, reason: string): void {
    if (this.closing) return;
    this.closing = true;
    this.deps.metrics.closes.inc({ code: String(code) });
    this.cleanup();
    try {
      this.ws.close(code, reason);
    } catch {
      this.ws.terminate();
    }
    setTimeout(() => this.ws.terminate(), this.deps.limits.closeTimeoutMs).unref();
  }

  private cleanup(): void {
    clearTimeout(this.expiryTimer);
    for (const sub of this.subs.values()) sub.close();
    this.deps.metrics.subscriptions.dec(this.subs.size);
    this.subs.clear();
  }

  private onFrame(data: Buffer, isBinary: boolean): void {
    if (this.closing) return;
    if (!this.limiter.take()) {
      this.deps.metrics.framesIn.inc({ type: "refused" });
      if (++this.refused > this.deps.limits.maxRefusedFrames) this.close(CloseCode.rateAbuse, "frame rate abuse");
      else this.sendError(undefined, new AppError("resource_exhausted", "too many frames; slow down", { details: { retryAfterMs: 1000 } }));
      return;
    }
    let frame: ClientFrame;
    try {
      if (isBinary) throw new AppError("invalid_argument", "client frames are JSON text");
      frame = parseClientFrame(data.toString("utf8"));
    } catch (error) {
      this.deps.metrics.framesIn.inc({ type: "invalid" });
      let ref: string | undefined;
      try { ref = frameRef(JSON.parse(data.toString("utf8"))); } catch { ref = undefined; }
      this.sendError(ref, error);
      return;
    }
    this.deps.metrics.framesIn.inc({ type: frame.type });
    const done = (p: Promise<void>) => p.catch((error: unknown) => this.sendError(frame.ref, error));
    switch (frame.type) {
      case "join": return void done(this.join(frame.conversationId, frame.lastSeq, frame.ref));
      case "leave": return this.leave(frame.conversationId, frame.ref);
      case "typing": return this.typing(frame.conversationId, frame.typing, frame.ref);
      case "send": return void done(this.callApi(frame.ref, async () => {
        const res = await this.deps.api.send(this.token, { conversationId: frame.conversationId, body: frame.body, idempotencyKey: frame.idempotencyKey });
        return { type: "ack", ref: frame.ref, message: res.message ? toJson(MessageSchema, res.message) : null, duplicate: res.duplicate };
      }));
      case "read": return void done(this.callApi(frame.ref, async () => {
        const res = await this.deps.api.markRead(this.token, { conversationId: frame.conversationId, seq: frame.seq });
        return { type: "ack", ref: frame.ref, lastReadSeq: String(res.lastReadSeq) };
      }));
    }
  }

  private async join(conversationId: string, lastSeq: bigint | null, ref: string | undefined): Promise<void> {
    if (this.joining.has(conversationId)) throw new AppError("failed_precondition", "a join of this conversation is in progress");
    const existing = this.subs.get(conversationId);
    if (existing) {
      // Re-join = resume from the given seq (or continue where this connection is).
      existing.close();
      this.subs.delete(conversationId);
      this.deps.metrics.subscriptions.dec();
      lastSeq ??= existing.delivered;
    } else if (this.subs.size + this.joining.size >= this.deps.limits.maxJoined) {
      throw new AppError("resource_exhausted", `at most ${this.deps.limits.maxJoined} conversations per connection`);
    }
    this.joining.add(conversationId);
    let ended = false;
    try {
      const sub = await this.deps.hub.subscribe(conversationId, lastSeq, {
        userId: this.principal.userId,
        onEvent: (e) => this.sendEvent(e),
        onEphemeral: (e) => {
          if (e.event.payload.case === "typing" && e.event.payload.value.userId === this.principal.userId) return;
          this.sendEphemeral(e);
        },
        onEnd: (reason) => {
          ended = true;
          if (this.subs.delete(conversationId)) this.deps.metrics.subscriptions.dec();
          if (reason === "failed") this.close(CloseCode.draining, "delivery interrupted; resume");
        },
        writable: () => this.writable(),
      });
      if (this.closing || this.ws.readyState !== WebSocket.OPEN) {
        sub.close();
        return;
      }
      if (!ended) {
        this.subs.set(conversationId, sub);
        this.deps.metrics.subscriptions.inc();
      }
      this.sendControl({ type: "joined", conversationId, lastSeq: String(sub.delivered), ref });
    } finally {
      this.joining.delete(conversationId);
    }
  }

  private leave(conversationId: string, ref: string | undefined): void {
    const sub = this.subs.get(conversationId);
    if (sub) {
      sub.close();
      this.subs.delete(conversationId);
      this.deps.metrics.subscriptions.dec();
    }
    this.sendControl({ type: "left", conversationId, ref });
  }

  private typing(conversationId: string, typing: boolean, ref: string | undefined): void {
    if (!this.subs.has(conversationId)) {
      this.sendError(ref, new AppError("failed_precondition", "join the conversation before sending typing"));
      return;
    }
    this.deps.typing.offer(conversationId, this.principal.userId, typing);
  }

  private async callApi(ref: string | undefined, fn: () => Promise<Record<string, unknown>>): Promise<void> {
    if (this.inFlight >= this.deps.limits.maxInFlight) {
      throw new AppError("resource_exhausted", "too many calls in flight on this connection", { details: { retryAfterMs: 100 } });
    }
    this.inFlight++;
    try {
      this.sendControl(await fn());
    } catch (error) {
      this.sendError(ref, error);
    } finally {
      this.inFlight--;
    }
  }

  /** A message event: never dropped; a socket that cannot keep up is closed to resume later. */
  private sendEvent(e: HubEvent): void {
    if (this.closing || this.ws.readyState !== WebSocket.OPEN) return;
    if (this.ws.bufferedAmount > this.deps.limits.maxBufferedBytes) {
      this.close(CloseCode.overflow, "send queue overflow; resume");
      return;
    }
    this.ws.send(this.binary ? e.bytes : jsonFrame(e), { binary: this.binary });
  }

  /** The user this socket is authenticated as. */
  get userId(): string {
    return this.principal.userId;
  }

  /** Typing, receipts, presence: dropped when the socket is half full. */
  sendEphemeral(e: HubEvent): void {
    if (this.closing || this.ws.readyState !== WebSocket.OPEN) return;
    if (this.ws.bufferedAmount > this.deps.limits.maxBufferedBytes / 2) {
      this.deps.metrics.ephemeralDropped.inc();
      return;
    }
    this.ws.send(this.binary ? e.bytes : jsonFrame(e), { binary: this.binary });
  }

  private sendControl(frame: Record<string, unknown>): void {
    if (this.closing || this.ws.readyState !== WebSocket.OPEN) return;
    this.ws.send(JSON.stringify(frame));
  }

  private sendError(ref: string | undefined, error: unknown): void {
    const appError = AppError.from(error);
    if (appError.code === "internal") this.deps.logger.error({ err: error }, "frame failed");
    const frame: Record<string, unknown> = { type: "error", code: appError.code, message: appError.message };
    if (ref !== undefined) frame.ref = ref;
    if (appError.details.field) frame.field = appError.details.field;
    if (appError.details.retryAfterMs !== undefined) frame.retryAfterMs = appError.details.retryAfterMs;
    if (appError.code === "unauthenticated") {
      this.sendControl(frame);
      this.close(errorMappings.unauthenticated.wsClose, "token invalid or expired");
      return;
    }
    this.sendControl(frame);
  }

  /** Replay backpressure: wait until the socket has drained to a quarter of the bound. */
  private async writable(): Promise<void> {
    while (!this.closing && this.ws.readyState === WebSocket.OPEN && this.ws.bufferedAmount > this.deps.limits.maxBufferedBytes / 4) {
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  /** Forwards a typing state of this gateway's users to every gateway with members joined. */
  static typingPublisher(hub: DeliveryHub, logger: Logger) {
    return (conversationId: string, userId: string, typing: boolean) => {
      hub.publishEphemeral(ephemeralEvent(conversationId, { case: "typing", value: { conversationId, userId, typing } }))
        .catch((err: unknown) => logger.debug({ err }, "typing publish failed"));
    };
  }
}
